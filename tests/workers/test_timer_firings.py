"""Timer firings in worker mode: the scheduler submits a firing to the log once, not
every round while it waits there for a worker, and again only if it is still due
`RESUBMIT_MS` later (the log lost it); the timers behind it fire meanwhile."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.rules.scheduler import BATCH, RESUBMIT_MS
from relevo.store import keys
from relevo.worker import Worker
from tests.conftest import unique_prefix
from tests.rules.conftest import MINUTE, T0, event
from tests.rules.test_timers_and_webhooks import ABANDONED, abandoned
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def engines(
    redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[Engine, Engine]]:
    """An API process and a worker's engine on one Redis, in worker mode, on one clock."""
    settings = Settings(
        store=redis_server.url,
        redis_prefix=unique_prefix(),
        data_dir=tmp_path / "data",
        apply="worker",
        log_partitions=2,
    )
    clock = ManualClock(T0)
    api, applier = Engine(settings, clock), Engine(settings, clock)
    await api.start(background=False)
    await applier.start(background=False)
    await api.put_rules({"rules": [ABANDONED]})
    await applier.rules.refresh()
    yield api, applier
    await api.stop()
    await applier.stop()


async def drain(worker: Worker, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while await worker.engine.backend.backlog():
        await worker.step()
        assert time.monotonic() < deadline, "the worker did not catch up"


def carts(users: list[str]) -> list[dict[str, Any]]:
    return [event("add_to_cart", user, T0, item_id="sho-001") for user in users]


async def test_a_firing_waiting_in_the_log_is_submitted_once(
    engines: tuple[Engine, Engine],
) -> None:
    api, applier = engines
    worker = Worker(applier, block_ms=5)
    await api.ingest(carts(["late-1"]))
    await drain(worker)
    clock = api.clock
    assert isinstance(clock, ManualClock)
    clock.set(T0 + 15 * MINUTE)
    assert await api.scheduler.run_once() == 1
    assert await api.backend.backlog() == 1
    for second in range(1, 4):  # the worker is behind: the firing waits in the log
        clock.set(T0 + 15 * MINUTE + second * 1_000)
        assert await api.scheduler.run_once() == 0
    assert await api.backend.backlog() == 1
    clock.set(T0 + 15 * MINUTE + RESUBMIT_MS)  # still not applied: submitted again
    assert await api.scheduler.run_once() == 1
    assert await api.backend.backlog() == 2
    await drain(worker)
    assert len(await abandoned(api)) == 1  # the two records, one firing
    clock.set(T0 + 15 * MINUTE + RESUBMIT_MS + 1_000)
    assert await api.scheduler.run_once() == 0
    assert api.scheduler._submitted == {}  # applied: its index entry is gone, and forgotten
    await worker.release()


async def test_the_timers_behind_the_waiting_ones_fire(engines: tuple[Engine, Engine]) -> None:
    """A round reads `BATCH` timers past those it waits for."""
    api, applier = engines
    worker = Worker(applier, block_ms=5)
    users = [f"many-{n}" for n in range(BATCH + 5)]
    await api.ingest(carts(users))
    await drain(worker)
    clock = api.clock
    assert isinstance(clock, ManualClock)
    clock.set(T0 + 15 * MINUTE)
    assert await api.scheduler.run_once() == BATCH
    clock.set(T0 + 15 * MINUTE + 1_000)
    assert await api.scheduler.run_once() == 5  # the rest, not the first BATCH again
    clock.set(T0 + 15 * MINUTE + 2_000)
    assert await api.scheduler.run_once() == 0
    await drain(worker, within=60)
    sent = (await api.actions(None, 2 * len(users)))["actions"]
    assert sorted(a["user_id"] for a in sent) == sorted(users)  # each once
    assert await api.store.zcard(keys.TIMERS_DUE) == 0
    await worker.release()
