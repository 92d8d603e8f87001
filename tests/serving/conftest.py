"""Engines on both backends with the demo catalog and traffic, driven by a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.demo.traffic import demo_traffic
from relevo.engine import Engine

T0 = 1_767_225_600_000
MINUTE = 60_000
DAY = 24 * 60 * MINUTE

EngineFactory = Callable[..., Coroutine[Any, Any, Engine]]


@pytest.fixture
async def make_engine(settings: Settings, clock: ManualClock) -> AsyncIterator[EngineFactory]:
    """Start engines on the same data (settings overrides allowed); all stopped at the end."""
    started: list[Engine] = []

    async def make(**overrides: Any) -> Engine:
        engine = Engine(settings.model_copy(update=overrides), clock)
        await engine.start(background=False)
        started.append(engine)
        return engine

    yield make
    for engine in started:
        if engine.started:
            await engine.stop()


@pytest.fixture
def redis_settings(settings: Settings) -> Settings:
    """The settings on Redis only: two engines on one Redis are two processes."""
    if settings.store == "embedded":
        pytest.skip("one process: the embedded store has no other process to tell")
    return settings


ProcessPair = Callable[..., Coroutine[Any, Any, tuple[Engine, Engine]]]


@pytest.fixture
def two_processes(
    redis_settings: Settings, make_engine: EngineFactory, clock: ManualClock
) -> ProcessPair:
    """Two engines on one Redis, as two API processes (the one that applies a change and
    another), with the same settings overrides; the clock at `T0`."""

    async def make(**overrides: Any) -> tuple[Engine, Engine]:
        clock.set(T0)
        return await make_engine(**overrides), await make_engine(**overrides)

    return make


@pytest.fixture
async def engine(make_engine: EngineFactory, clock: ManualClock) -> Engine:
    clock.set(T0)
    return await make_engine()


def view(user: str, item: str, at: int, **fields: Any) -> dict[str, Any]:
    return {"type": "view", "user_id": user, "item_id": item, "timestamp": at, **fields}


async def with_catalog(engine: Engine, *extra: dict[str, Any]) -> None:
    await engine.upsert_items([*demo_items(), *extra])


async def with_traffic(engine: Engine, clock: ManualClock, users: int = 60) -> None:
    """The demo catalog and `users` shoppers' traffic, archived; the clock after it."""
    await with_catalog(engine)
    events = demo_traffic(users, start_ms=T0 - 15 * DAY, days=14)
    clock.set(events[-1]["timestamp"] + MINUTE)
    for start in range(0, len(events), 2000):
        report = await engine.ingest(events[start : start + 2000])
        assert report.count("rejected") == 0
    await engine.archiver.flush()
