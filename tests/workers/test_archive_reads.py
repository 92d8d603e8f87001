"""The archive's reads of the Redis log: every record as appended, once archived gone.

On one node the archive group is read with raw commands (no redis-py reply callbacks)
and on a cluster through redis-py: both must give the same records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from relevo.eventlog.base import LogRecord
from relevo.eventlog.redis_stream import (
    ARCHIVE_GROUP,
    ARCHIVE_IDLE_MS,
    RedisStreamLog,
    _flat_record,
    _record,
)
from relevo.store.redis import RedisStore
from tests.conftest import unique_prefix
from tests.support.servers import RedisClusterServers, RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture(params=["redis", "redis-cluster"])
async def log(request: pytest.FixtureRequest) -> AsyncIterator[RedisStreamLog]:
    servers: RedisServer | RedisClusterServers = request.getfixturevalue(
        "redis_cluster" if request.param == "redis-cluster" else "redis_server"
    )
    store = RedisStore(servers.url, prefix=unique_prefix())
    stream_log = RedisStreamLog(store, partitions=4, workers=True)
    await stream_log.open()
    try:
        yield stream_log
    finally:
        await store.close()


def records() -> list[LogRecord]:
    made = []
    for number in range(40):
        user = ["u1", "ü2", "用户3", "u-4", "u5"][number % 5]
        body = {"event_id": f"e{number}", "user_id": user, "context": {"page": "/été"}}
        made.append(LogRecord("event", user, orjson.dumps(body)))
    made.append(LogRecord("item", "sho-1", orjson.dumps({"item_id": "sho-1", "price": 9.5})))
    made.append(LogRecord("timer", "u1", b"{}"))
    return made


async def test_archive_batches_give_every_record_as_appended(log: RedisStreamLog) -> None:
    appended = records()
    positions = await log.append(appended)
    expected = {
        position: LogRecord(r.kind, r.key, r.body, position)
        for r, position in zip(appended, positions, strict=True)
    }
    first = await log.archive_batch(7)
    assert len(first) == 7
    assert await log.archive_batch(7) == first  # the same again until archived
    await log.archive_done(first)
    rest = await log.archive_batch(1_000)
    await log.archive_done(rest)
    got = first + rest
    assert {record.position: record for record in got} == expected
    assert len(got) == len(expected)
    assert await log.archive_batch(1_000) == []


async def test_an_entry_erased_after_delivery_is_not_archived(log: RedisStreamLog) -> None:
    await log.append(records())
    delivered = await log.archive_batch(1_000)  # then the archiver crashed: not acknowledged
    assert await log.erase("ü2") == 8
    again = await log.archive_batch(1_000)
    assert [r for r in delivered if r.key != "ü2"] == again


def test_a_record_read_by_place_is_the_record_read_by_name() -> None:
    ordered = [b"k", b"event", b"u", "ü".encode(), b"d", b'{"a":1}']
    shuffled = [b"d", b'{"a":1}', b"k", b"event", b"u", "ü".encode()]
    expected = _record(2, b"1-0", {b"k": b"event", b"u": "ü".encode(), b"d": b'{"a":1}'})
    assert expected == LogRecord("event", "ü", b'{"a":1}', "2/1-0")
    assert _flat_record(2, b"1-0", ordered) == expected
    assert _flat_record(2, b"1-0", shuffled) == expected


async def test_a_partition_whose_pending_entries_were_all_erased_moves_on(
    log: RedisStreamLog,
) -> None:
    """The archiver crashed after reading a partition's entries, then they were all erased:
    their ids stay pending, with no record behind them, and must not hide what comes next."""
    gone = "gone"
    kept = next(
        u
        for u in (f"kept-{n}" for n in range(100))
        if log.partition_of(u) == log.partition_of(gone)
    )
    await log.append([LogRecord("event", gone, orjson.dumps({"event_id": "g", "user_id": gone}))])
    assert len(await log.archive_batch(1_000)) == 1  # delivered, never acknowledged
    assert await log.erase(gone) == 1
    later = LogRecord("event", kept, orjson.dumps({"event_id": "k", "user_id": kept}))
    (position,) = await log.append([later])
    assert await log.archive_batch(1_000) == [LogRecord("event", kept, later.body, position)]


async def test_records_of_an_archiver_that_died_are_claimed_once_they_rested(
    log: RedisStreamLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another archiver takes what one read and never archived once it rested
    `ARCHIVE_IDLE_MS`; until a partition's oldest pending record was logged that long ago,
    none can have, and its pending records are not searched (no ``XAUTOCLAIM``)."""
    (position,) = await log.append([records()[0]])
    recent = int(position.split("/")[0])
    old = (recent + 1) % log.partitions
    assert len(await log.archive_batch(1_000)) == 1  # read, never archived: it died
    other = RedisStreamLog(log.store, partitions=log.partitions, workers=True)
    other.consumer = "another-archiver"
    searched: list[Any] = []
    autoclaim = log.client.xautoclaim

    async def counted(stream: Any, *args: Any, **kwargs: Any) -> Any:
        searched.append(stream)
        return await autoclaim(stream, *args, **kwargs)

    monkeypatch.setattr(log.client, "xautoclaim", counted)
    assert await other.archive_batch(1_000) == []
    assert searched == []  # logged just now: none can have rested a minute
    # a record logged in 1970, read by the archiver that died a minute ago
    body = orjson.dumps({"event_id": "e-old", "user_id": "u-old"})
    await log.client.xadd(log.streams[old], {"k": "event", "u": "u-old", "d": body}, id="1000-0")
    assert sorted(r.key for r in await log.archive_batch(1_000)) == ["u-old", "u1"]
    await log.client.xclaim(
        log.streams[old], ARCHIVE_GROUP, log.consumer, 0, ["1000-0"], idle=ARCHIVE_IDLE_MS
    )
    assert await other.archive_batch(1_000) == [LogRecord("event", "u-old", body, f"{old}/1000-0")]
    assert searched == [log.streams[old]]
