"""Redis documents: the compact layout (one string each for a document and its marks),
and documents written by earlier versions (a hash and a sorted set), read and converted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relevo.features.profile import ProfileState, RecentItem, decode, encode
from relevo.store.base import DocRead, DocWrite
from relevo.store.redis import RedisStore
from tests.conftest import unique_prefix
from tests.support.servers import RedisServer

NOW = 1_767_225_600_000
HORIZON = 3_600_000


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url, prefix=unique_prefix())
    yield store
    await store.close()


def write(version: int, value: bytes, marks: list[bytes], now: int = NOW) -> DocWrite:
    return DocWrite(
        "{u:a}:profile", "{u:a}:applied", version, value, now_ms=now, marks=marks,
        ttl_ms=60_000, marks_horizon_ms=HORIZON,
    )  # fmt: skip


async def test_documents_and_marks_are_plain_strings(store: RedisStore) -> None:
    assert await store.docs_write([write(0, b"doc", [b"m1", b"m2"])]) == [True]
    client = store.client
    assert await client.type(store.k("{u:a}:profile")) == b"string"
    assert await client.get(store.k("{u:a}:profile")) == b"\x01\x00\x00\x00\x01doc"
    marks = await client.get(store.k("{u:a}:applied"))
    second = (NOW // 1000).to_bytes(4, "big")
    assert marks == b"\x00\x02\x02" + second + b"m1m2"  # one group per write and length
    assert 0 < await client.pttl(store.k("{u:a}:applied")) <= HORIZON


async def test_marks_of_one_write_share_a_record_and_stale_ones_leave(store: RedisStore) -> None:
    """One record per write (and mark length): 7 bytes, then 8 per 8-byte mark. Records of
    the earlier layout (one per mark) in the same string are read, and pruned alike."""
    client = store.client
    old_second = ((NOW - HORIZON - 5000) // 1000).to_bytes(4, "big")
    recent_second = ((NOW - 1000) // 1000).to_bytes(4, "big")
    await client.set(
        store.k("{u:a}:applied"), b"\x03old" + old_second + b"\x04kept" + recent_second
    )
    many = [number.to_bytes(8, "big") for number in range(300)]
    assert await store.docs_write([write(0, b"doc", [*many, b"odd"])]) == [True]
    marks = await client.get(store.k("{u:a}:applied"))
    second = (NOW // 1000).to_bytes(4, "big")
    assert marks == (
        b"\x04kept" + recent_second  # the stale earlier record is gone, the other kept
        + b"\x00\xff\x08" + second + b"".join(many[:255])
        + b"\x00\x2d\x08" + second + b"".join(many[255:])
        + b"\x00\x01\x03" + second + b"odd"
    )  # fmt: skip
    asked = [b"old", b"kept", many[0], many[299], b"odd", b"new"]
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", asked)])
    assert doc.marked == [False, True, True, True, True, False]
    later = NOW + HORIZON + 1000  # every mark above is stale by then
    assert await store.docs_write([write(1, b"doc2", [b"new"], now=later)]) == [True]
    assert await client.get(store.k("{u:a}:applied")) == (
        b"\x00\x01\x03" + (later // 1000).to_bytes(4, "big") + b"new"
    )


async def test_documents_of_the_earlier_layout_are_read_and_converted(store: RedisStore) -> None:
    client = store.client
    old = ProfileState(user_id="a", recent_items=[RecentItem("sku", 1)])
    plain = encode(old) if len(encode(old)) < 96 else b""
    assert plain  # a small profile is plain MessagePack, as every profile once was
    await client.hset(store.k("{u:a}:profile"), mapping={"v": 7, "d": plain})
    await client.zadd(store.k("{u:a}:applied"), {b"old": NOW - 1000, b"stale": NOW - HORIZON - 1})
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", [b"old", b"x"])])
    assert (doc.version, doc.marked) == (7, [True, False])
    assert doc.value is not None
    assert decode(doc.value) == old
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied")])
    assert doc.version == 7
    assert await store.docs_write([write(6, b"late", [b"new"])]) == [False]
    assert await store.docs_write([write(7, b"next", [b"new"])]) == [True]
    assert await client.type(store.k("{u:a}:profile")) == b"string"
    assert await client.type(store.k("{u:a}:applied")) == b"string"
    marks = [b"old", b"stale", b"new"]
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", marks)])
    assert (doc.version, doc.value, doc.marked) == (8, b"next", [True, False, True])


async def test_old_marks_with_a_new_document(store: RedisStore) -> None:
    await store.docs_write([write(0, b"doc", [])])
    await store.client.zadd(store.k("{u:a}:applied"), {b"old": NOW})
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", [b"old", b"x"])])
    assert (doc.version, doc.value, doc.marked) == (1, b"doc", [True, False])


async def test_a_mark_longer_than_255_bytes_is_refused(store: RedisStore) -> None:
    from relevo.errors import InvalidInput

    with pytest.raises(InvalidInput):
        await store.docs_write([write(0, b"doc", [b"x" * 256])])


async def test_stale_marks_leave_from_the_head(store: RedisStore) -> None:
    await store.docs_write([write(0, b"a", [b"m1"], now=NOW)])
    await store.docs_write([write(1, b"b", [b"m2"], now=NOW + HORIZON // 2)])
    await store.docs_write([write(2, b"c", [b"m3"], now=NOW + HORIZON + 1)])
    marks = [b"m1", b"m2", b"m3"]
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", marks)])
    assert doc.marked == [False, True, True]
    blob = await store.client.get(store.k("{u:a}:applied"))
    assert blob.startswith(b"\x00\x01\x02")  # a record of one 2-byte mark: m2's
    assert blob[7:9] == b"m2"
    assert len(blob) == 2 * (7 + 2)
