"""Workers apply what API processes log (RELEVO_APPLY=worker), on a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from relevo.clock import SystemClock
from relevo.config import Settings
from relevo.consent import consent_event
from relevo.engine import Engine
from relevo.errors import Overloaded
from relevo.eventlog.base import LogRecord
from relevo.eventlog.redis_stream import APPLY_GROUP
from relevo.worker import Worker
from tests.conftest import unique_prefix
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def worker_store(redis_server: RedisServer) -> str:
    """The Redis the workers share (tests/cluster runs these tests on a cluster)."""
    return redis_server.url


@pytest.fixture
def worker_settings(worker_store: str, tmp_path: Path) -> Settings:
    return Settings(
        store=worker_store,
        redis_prefix=unique_prefix(),
        data_dir=tmp_path / "data",
        apply="worker",
        log_partitions=4,
    )


@pytest.fixture
async def api(worker_settings: Settings) -> AsyncIterator[Engine]:
    engine = Engine(worker_settings, SystemClock())
    await engine.start(background=False)
    yield engine
    await engine.stop()


Factory = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def workers(worker_settings: Settings) -> AsyncIterator[Factory]:
    started: list[tuple[Engine, Worker]] = []

    async def make(**options: object) -> Worker:
        engine = Engine(worker_settings, SystemClock())
        await engine.start(background=False)
        worker = Worker(engine, block_ms=5, **options)  # type: ignore[arg-type]
        started.append((engine, worker))
        return worker

    yield make
    for engine, worker in started:
        await worker.release()
        await engine.stop()


def events(user: str, count: int, start: int = 0) -> list[dict[str, object]]:
    now = int(time.time() * 1000)
    return [
        {
            "event_id": f"{user}-{n}",
            "type": "view",
            "user_id": user,
            "item_id": f"i{n}",
            "timestamp": now,
        }
        for n in range(start, start + count)
    ]


async def drain(*workers: Worker, within: float = 15.0) -> None:
    """Step the workers until nothing waits in the log (applied or parked)."""
    deadline = time.monotonic() + within
    while True:
        for worker in workers:
            await worker.step()
        if await workers[0].engine.backend.backlog() == 0:
            return
        assert time.monotonic() < deadline, "the workers did not catch up"


async def views(engine: Engine, user: str) -> int:
    profile = await engine.profile(user)
    return 0 if profile is None else int(profile["counts"]["view"]["total"])


async def test_the_api_logs_and_a_worker_applies(api: Engine, workers: Factory) -> None:
    report = await api.ingest(events("w1", 5))
    assert report.count("accepted") == 5
    assert await api.profile("w1") is None  # not applied by the API
    worker = await workers()
    await drain(worker)
    assert await views(api, "w1") == 5
    assert worker.owned == set(range(4))
    assert await api.backend.backlog() == 0


async def test_a_worker_applies_a_removal_after_the_upserts_logged_before_it(
    api: Engine, workers: Factory
) -> None:
    """The catalog takes effect in the API process at once, even in worker mode; the
    workers apply the log again, an item's upserts and removal in the order logged
    (they share its partition), so the removal stays."""
    items = [{"item_id": "w-item", "category": "c"}, {"item_id": "w-kept", "category": "c"}]
    await api.upsert_items(items)
    assert await api.remove_items(["w-item"]) == ["w-item"]
    assert await api.item("w-item") is None
    await drain(await workers())
    assert await api.item("w-item") is None
    assert await api.item("w-kept") is not None
    assert await api.live.category_items("c", 10) == ["w-kept"]


async def test_a_resent_event_is_logged_again_and_applied_once(
    api: Engine, workers: Factory
) -> None:
    """In worker mode the API does not read profiles: the worker skips what they absorbed."""
    worker = await workers()
    first = await api.ingest(events("again", 3))
    await drain(worker)
    resent = await api.ingest([*events("again", 3), *events("again", 1, start=3)])
    assert [r.status for r in first.results] == ["accepted"] * 3
    assert [r.status for r in resent.results] == ["accepted"] * 4  # repeats are the worker's
    twice = await api.ingest([*events("again", 1, start=4), *events("again", 1, start=4)])
    assert [r.status for r in twice.results] == ["accepted", "duplicate"]  # within a request
    await drain(worker)
    assert await views(api, "again") == 5


async def test_a_worker_keeps_an_opted_out_users_events_out_of_the_profile(
    api: Engine, workers: Factory
) -> None:
    worker = await workers()
    await api.ingest(events("private", 2))
    await api.ingest([consent_event("private", {"personalization": False})], batch=False)
    await api.ingest(events("private", 3, start=2))
    await drain(worker)
    profile = await api.profile("private")
    assert profile is not None
    assert profile["counts"] == profile["affinities"] == {}
    assert profile["consent"] == {"personalization": False}


async def test_two_workers_share_the_partitions(api: Engine, workers: Factory) -> None:
    first, second = await workers(), await workers()
    await first.rebalance()
    await second.rebalance()
    await first.rebalance()  # the first sees the second and gives back its extras
    await second.rebalance()
    assert first.owned.isdisjoint(second.owned)
    assert first.owned | second.owned == set(range(4))
    assert len(first.owned) == len(second.owned) == 2
    for user in ("a", "b", "c", "d", "e", "f"):
        await api.ingest(events(user, 3))
    await drain(first, second)
    assert [await views(api, u) for u in "abcdef"] == [3] * 6


async def test_a_dead_workers_unacknowledged_records_are_applied_once(
    api: Engine, workers: Factory
) -> None:
    doomed = await workers(lease_ms=300)
    await doomed.rebalance()
    await api.ingest(events("crash", 6))
    read = await doomed.log.read_new(sorted(doomed.owned), doomed.name, 100, None)
    assert len(read) == 6  # read, then it "dies" before acknowledging
    half = read[:3]
    await doomed.engine.apply_records(half)  # it even applied half of them
    successor = await workers(lease_ms=300)
    deadline = time.monotonic() + 10
    while successor.owned != set(range(4)):
        await successor.rebalance()  # takes the partitions once the leases expire
        assert time.monotonic() < deadline
    await drain(successor)
    assert await views(api, "crash") == 6


async def test_a_poison_record_is_parked_with_its_reason(api: Engine, workers: Factory) -> None:
    backend = api.backend
    await backend.append([LogRecord("event", "poison", b"{not json")])
    await api.ingest(events("healthy", 2))
    worker = await workers(max_deliveries=2, retry_idle_ms=0, lease_ms=300)
    await drain(worker)
    parked = await worker.log.dead_letters()
    assert [(entry["key"], entry["reason"].split(":")[0]) for entry in parked] == [
        ("poison", "JSONDecodeError")
    ]
    assert await views(api, "healthy") == 2
    assert await api.backend.backlog() == 0


async def test_only_partitions_read_long_enough_ago_are_searched_for_stalled_records(
    api: Engine, workers: Factory
) -> None:
    """`RedisStreamLog.stalled`: a record read but not acknowledged can have rested
    `idle_ms` only if it was logged that long ago (a stream id is its logging time)."""
    log = (await workers()).log
    await log.client.xadd(log.streams[0], {"k": "event", "u": "old", "d": b"{}"}, id="1000-0")
    await log.client.xadd(log.streams[1], {"k": "event", "u": "new", "d": b"{}"})
    assert await log.stalled([0, 1, 2], 5_000) == []  # nothing read yet: nothing pending
    assert len(await log.read_new([0, 1], "reader", 10, None)) == 2
    assert await log.stalled([0, 1, 2], 5_000) == [0]  # logged in 1970, read just now
    assert await log.stalled([0, 1, 2], 0) == [0, 1]
    assert [r.key for r in await log.reclaim(1, "other", 0, 10)] == ["new"]


async def test_ingestion_refuses_work_over_the_backlog_limit(
    worker_settings: Settings, workers: Factory
) -> None:
    engine = Engine(worker_settings.model_copy(update={"max_lag": 10}), SystemClock())
    await engine.start(background=False)
    try:
        await engine.ingest(events("flood", 12))
        engine._backlog = (0, 0)  # the next call looks again
        with pytest.raises(Overloaded):
            await engine.ingest(events("flood", 1, start=12))
        await drain(await workers())
        engine._backlog = (0, 0)
        assert (await engine.ingest(events("flood", 1, start=12))).count("accepted") == 1
    finally:
        await engine.stop()


SHARED_JOBS = {
    "relevo-archiver",
    "relevo-timers",
    "relevo-compaction",
    "relevo-monitoring",
    "relevo-dictionary-training",
}


async def test_api_processes_in_worker_mode_leave_the_housekeeping_to_workers(
    worker_settings: Settings,
) -> None:
    """Archiving, timers, compaction, drift evaluation...: the workers' jobs, so that no
    burst of them (an archive flush of thousands of rows) delays an API process's
    requests; every process still follows the configuration and flushes its counts."""
    api = Engine(worker_settings, SystemClock())
    worker = Engine(worker_settings, SystemClock())
    inline = Engine(worker_settings.model_copy(update={"apply": "inline"}), SystemClock())
    await api.start()
    await worker.start(housekeeping=True)  # as `relevo worker` starts its engine
    await inline.start()
    try:
        assert SHARED_JOBS.isdisjoint(api.background.jobs)
        assert set(worker.background.jobs) >= SHARED_JOBS
        assert set(inline.background.jobs) >= SHARED_JOBS  # one process does everything
        for engine in (api, worker, inline):
            assert {"relevo-config-refresh", "relevo-monitoring-flush"} <= set(
                engine.background.jobs
            )
    finally:
        for engine in (api, worker, inline):
            await engine.stop()


async def delivered_not_acknowledged(engine: Engine) -> int:
    stream = engine.backend.stream  # type: ignore[attr-defined]
    total = 0
    for name in stream.streams:
        total += (await stream.client.xpending(name, APPLY_GROUP))["pending"]
    return int(total)


async def test_a_lingering_worker_applies_what_arrives_meanwhile_in_one_batch(
    api: Engine, workers: Factory
) -> None:
    """After a read that brought less than a batch, the worker waits `linger_ms` and reads
    again before applying: light traffic makes fewer, larger batches (each has a fixed
    cost of a dozen round trips)."""
    worker = await workers(linger_ms=500)
    await worker.step()  # takes its partitions; nothing to apply yet
    await api.ingest(events("early", 3))
    stepping = asyncio.create_task(worker.step())
    deadline = time.monotonic() + 10
    while await delivered_not_acknowledged(api) < 3:  # read, now lingering
        assert time.monotonic() < deadline, "the worker did not read the first events"
        await asyncio.sleep(0.005)
    await api.ingest(events("late", 2))
    assert await stepping == 5  # one step applied both requests' events
    assert await views(api, "early") == 3
    assert await views(api, "late") == 2
    assert await delivered_not_acknowledged(api) == 0
