"""The marks sweep: exactly-once across it, passes resumed by another process, one
process sweeping at a time, a pass at most once per interval. The clock is driven."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.marks_sweep import LEASE, MarksSweeper
from relevo.store import keys
from relevo.store.base import DocRead, DocWrite, Store
from relevo.store.memory import MemoryStore
from relevo.store.redis import parse_document
from tests.conftest import StoreHarness

HOUR = 3_600_000
DAY = 24 * HOUR
HORIZON = 7 * DAY


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    engine = Engine(settings, clock)
    await engine.start(background=False)
    yield engine
    await engine.stop()


def event(clock: ManualClock, event_id: str = "e1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "view",
        "user_id": "alice",
        "item_id": "i1",
        "timestamp": clock.now_ms() - 1000,
    }


async def applied_record(engine: Engine) -> dict[str, Any]:
    """The last event as the applier saw it (to apply it again: a redelivery)."""
    (blob,) = await engine.store.list_range(keys.RECENT_EVENTS, 0, 0)
    record: dict[str, Any] = orjson.loads(blob)
    return record


async def marked(engine: Engine, event_id: str) -> tuple[int, bool]:
    """(version, whether the profile holds the event's mark)."""
    (doc,) = await engine.store.docs_read(
        [
            DocRead(
                keys.profile_key("alice"),
                keys.profile_marks_key("alice"),
                [keys.event_mark(event_id)],
            )
        ]
    )
    return doc.version, doc.marked[0]


async def test_a_retry_within_the_horizon_is_still_recognized_after_a_sweep(
    engine: Engine, clock: ManualClock
) -> None:
    assert (await engine.ingest([event(clock)])).count("accepted") == 1
    record = await applied_record(engine)
    clock.advance(HORIZON - HOUR)
    done = await engine.sweep_marks()
    assert done is not None
    assert done.swept == 0
    assert await marked(engine, "e1") == (1, True)
    assert await engine.applier.apply_events([record]) == [False]  # a redelivery
    profile = await engine.profile("alice")
    assert profile is not None
    assert profile["events"] == 1


async def test_after_the_horizon_a_sweep_drops_the_marks_and_the_event_is_new_again(
    engine: Engine, clock: ManualClock
) -> None:
    assert (await engine.ingest([event(clock)])).count("accepted") == 1
    clock.advance(HORIZON + 1000)
    done = await engine.sweep_marks()
    assert done is not None
    assert done.documents <= 1
    assert await marked(engine, "e1") == (1, False)  # the profile's version stays
    assert (await engine.ingest([event(clock)])).count("accepted") == 1  # as before sweeps
    profile = await engine.profile("alice")
    assert profile is not None
    assert profile["events"] == 2


async def test_on_redis_the_idle_profile_string_shrinks(engine: Engine, clock: ManualClock) -> None:
    if engine.store.backend != "redis":
        pytest.skip("marks live inside the Redis document")
    await engine.ingest([event(clock, f"e{n}") for n in range(5)])
    client: Any = engine.store.client  # type: ignore[attr-defined]
    name = engine.settings.redis_prefix + ":" + keys.profile_key("alice")
    before = await client.get(name)
    clock.advance(HORIZON + 1000)
    done = await engine.sweep_marks()
    assert done is not None
    assert (done.swept, done.freed_bytes) == (1, 7 + 5 * 8)
    after = await client.get(name)
    assert parse_document(after) == (*parse_document(before)[:2], b"")
    assert len(before) - len(after) == 47


async def fill(store: Store, users: int, clock: ManualClock) -> None:
    """Profiles with a mark a horizon old and a younger one (embedded: the marks key
    expires a horizon after the last write, so it stays)."""
    for version, mark in enumerate((b"old", b"young")):
        await store.docs_write(
            [
                DocWrite(
                    keys.profile_key(f"u{n}"),
                    keys.profile_marks_key(f"u{n}"),
                    version,
                    b"v",
                    now_ms=clock.now_ms(),
                    marks=[mark],
                    ttl_ms=90 * DAY,
                    marks_horizon_ms=HORIZON,
                )
                for n in range(users)
            ]
        )
        clock.advance(HORIZON // 2)
    clock.advance(1000)  # the first marks are now past the horizon


def swept_total() -> float:
    return REGISTRY.get_sample_value("relevo_marks_swept_documents_total") or 0.0


async def test_a_pass_cut_short_is_continued_by_another_process(
    harness: StoreHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relevo.marks_sweep")
    store, clock = harness.store, harness.clock
    await fill(store, 60, clock)
    counted = swept_total()
    first = MarksSweeper(store, clock, HORIZON, HOUR, keys_per_round=10)
    assert await first.run(stopping=lambda: True) is None  # stopped after one round
    state = await first.state()
    assert state.running
    assert state.cursor != "0"
    assert state.rounds == 1
    second = MarksSweeper(store, clock, HORIZON, HOUR, keys_per_round=10)
    done = await second.run()
    assert done is not None
    assert not done.running
    assert done.rounds > 1
    assert done.swept == 60  # over both processes' rounds
    assert done.started_ms == state.started_ms
    assert (await second.state()).finished_ms == clock.now_ms()
    assert swept_total() - counted == 60
    assert caplog.text.count("marks sweep:") == 1  # one line per pass
    assert "60 lost expired marks" in caplog.text


async def test_one_process_sweeps_at_a_time(harness: StoreHarness) -> None:
    store, clock = harness.store, harness.clock
    await fill(store, 20, clock)
    assert await store.lease(LEASE, "another process", 60_000)
    sweeper = MarksSweeper(store, clock, HORIZON, HOUR, keys_per_round=5)
    assert await sweeper.run() is None
    assert (await sweeper.state()).rounds == 0
    await store.release(LEASE, "another process")
    others = [MarksSweeper(store, clock, HORIZON, HOUR, keys_per_round=5) for _ in range(3)]
    passes = await asyncio.gather(*(other.run() for other in others))
    done = [found for found in passes if found is not None]
    assert len(done) == 1
    assert done[0].swept == 20


async def test_a_pass_starts_at_most_once_per_interval(harness: StoreHarness) -> None:
    store, clock = harness.store, harness.clock
    sweeper = MarksSweeper(store, clock, HORIZON, HOUR)
    assert await sweeper.run() is not None
    clock.advance(HOUR - 1)
    assert await sweeper.run() is None
    assert await sweeper.run(force=True) is not None  # `relevo store sweep-marks`
    clock.advance(HOUR)
    assert await sweeper.run() is not None


@pytest.mark.parametrize(("every", "running"), [(HOUR, True), (0, False)])
async def test_the_server_sweeps_unless_told_not_to(
    settings: Settings, clock: ManualClock, every: int, running: bool
) -> None:
    engine = Engine(settings.model_copy(update={"marks_sweep_every": every}), clock)
    await engine.start()
    try:
        names = {task.get_name() for task in engine.background._tasks}
        assert ("relevo-marks-sweep" in names) is running
    finally:
        await engine.stop()


async def test_embedded_marks_are_still_swept_after_a_snapshot(clock: ManualClock) -> None:
    store = MemoryStore(clock)
    await fill(store, 3, clock)
    restored = MemoryStore(clock)
    restored.load(store.dump())
    found = await restored.sweep_marks(keys.PROFILE_DOCUMENTS, "0", clock.now_ms() - HORIZON)
    assert (found.cursor, found.documents, found.swept) == ("0", 3, 3)
