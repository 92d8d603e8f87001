"""Engines with rules on both backends, driven by a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine

T0 = 1_767_225_600_000
MINUTE = 60_000

EngineFactory = Callable[[], Coroutine[Any, Any, Engine]]


@pytest.fixture
async def make_engine(settings: Settings, clock: ManualClock) -> AsyncIterator[EngineFactory]:
    """Start engines on the same data (several processes on Redis; restarts when embedded)."""
    started: list[Engine] = []

    async def make() -> Engine:
        engine = Engine(settings, clock)
        await engine.start(background=False)
        started.append(engine)
        return engine

    yield make
    for engine in started:
        if engine.started:
            await engine.stop()


@pytest.fixture
async def engine(make_engine: EngineFactory, clock: ManualClock) -> Engine:
    clock.set(T0)
    return await make_engine()


def event(kind: str, user: str, at: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "user_id": user, "timestamp": at, **fields}
