"""Erasure on both backends: afterwards no key, value, log record, snapshot or archived
row mentions the user, while other users and site-wide counts are untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from relevo.backends import EmbeddedBackend
from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.erasure import FunctionEraser, owns_key
from relevo.eventlog.archive import read_events
from tests.support.servers import RedisServer
from tests.support.traces import file_traces, store_traces

VICTIM = "erase-me-7f3a"
OTHER = "keep-me-2b9c"
T0 = 1_767_225_600_000


def events(user: str, first: int, count: int, **extra: Any) -> list[dict[str, Any]]:
    kinds = ["view", "click", "add_to_cart", "purchase"]
    return [
        {
            "event_id": f"{user}-{n}",
            "type": kinds[n % 4],
            "user_id": user,
            "item_id": f"item-{n % 5}",
            "category": "shoes",
            "timestamp": T0 + n * 60_000,
            **extra,
        }
        for n in range(first, first + count)
    ]


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    clock.set(T0 + 86_400_000)
    engine = Engine(settings, clock)
    await engine.start(background=False)
    yield engine
    await engine.stop()


async def test_erasure_leaves_no_trace_anywhere(
    engine: Engine, settings: Settings, request: pytest.FixtureRequest
) -> None:
    redis_client = None
    if settings.is_redis:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_client = server.client()
    # history that reaches the archive, the snapshot, and then more still in the log only
    await engine.ingest(events(VICTIM, 0, 6) + events(OTHER, 0, 6))
    await engine.ingest(
        [
            {"type": "view", "anonymous_id": VICTIM, "item_id": "item-9", "timestamp": T0},
            {"type": "consent", "user_id": VICTIM, "properties": {"analytics": True}},
        ]
    )
    assert await engine.archiver.flush() > 0
    if isinstance(engine.backend, EmbeddedBackend):
        await engine.backend.checkpoint()
    await engine.ingest(events(VICTIM, 6, 4, anonymous_id="device-1") + events(OTHER, 6, 2))
    assert store_traces(engine, VICTIM, redis_client)
    before = file_traces(settings.data_dir, VICTIM)
    assert any(path.endswith(".parquet") for path in before)
    if not settings.is_redis:
        assert any("snapshot" in path for path in before)
        assert any("log.sqlite3" in path for path in before)
    totals_before = (await engine.stats())["events"]

    receipt = await engine.erase(VICTIM)

    assert receipt.user_id == VICTIM
    assert len(receipt.receipt_id) == 32
    # the profile and its dedupe marks: one key on Redis (marks inside), two embedded
    assert receipt.removed["store_keys"] == (1 if settings.is_redis else 2)
    assert receipt.removed["recent_events"] == 12
    assert receipt.removed["event_log"] >= 4  # at least what was never archived
    assert receipt.removed["archive_tombstones"] == 1
    assert receipt.pending
    assert await engine.profile(VICTIM) is None
    # hidden from archive readers at once, before compaction
    assert VICTIM not in repr(read_events(settings.archive_path).to_pylist())

    report = await engine.compact(grace_ms=0)
    assert report.tombstones_applied == 1
    assert report.rows_removed == 8
    assert store_traces(engine, VICTIM, redis_client) == []
    assert file_traces(settings.data_dir, VICTIM) == []  # log, WAL, snapshot, archive
    # nobody else lost anything, and site-wide counts are counts, not traces
    other = await engine.profile(OTHER)
    assert other is not None
    assert other["events"] == 8
    assert (await engine.stats())["events"] == totals_before
    await engine.archiver.flush()
    archived = read_events(settings.archive_path)
    assert set(archived.column("user_id").to_pylist()) == {OTHER}
    assert archived.num_rows == 8


async def test_erasure_is_idempotent_and_events_after_it_are_new(engine: Engine) -> None:
    await engine.ingest(events(VICTIM, 0, 2))
    await engine.erase(VICTIM)
    again = await engine.erase(VICTIM)
    assert again.removed["store_keys"] == again.removed["event_log"] == 0
    report = await engine.ingest(events(VICTIM, 0, 2))
    assert report.count("accepted") == 2  # the dedupe marks went with the profile
    profile = await engine.profile(VICTIM)
    assert profile is not None
    assert profile["events"] == 2


async def test_user_ids_with_braces_erase_only_their_own_keys(engine: Engine) -> None:
    tricky, neighbour = "a}b", "a}b}:x"
    await engine.ingest(events(tricky, 0, 1) + events(neighbour, 0, 1))
    await engine.erase(tricky)
    assert await engine.profile(tricky) is None
    assert await engine.profile(neighbour) is not None
    assert owns_key("a*", "{u:a*}:profile")
    assert not owns_key("a", "{u:ab}:profile")


async def test_subsystems_plug_their_erasers_in(engine: Engine) -> None:
    erased: list[str] = []

    async def timers(user_id: str) -> int:
        erased.append(user_id)
        return 3

    engine.erasers.register(FunctionEraser("timers", timers, pending=None))
    with pytest.raises(ValueError, match="already registered"):
        engine.erasers.register(FunctionEraser("timers", timers))
    receipt = await engine.erase("u-1")
    assert erased == ["u-1"]
    assert receipt.removed["timers"] == 3
    assert engine.erasers.names[-1] == "timers"
