"""Engines on both backends, driven by a manual clock, for the live models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine

T0 = 1_767_225_600_000
MINUTE = 60_000


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    clock.set(T0)
    engine = Engine(settings, clock)
    await engine.start(background=False)
    yield engine
    await engine.stop()


def event(kind: str, user: str, at: int, item: str | None = None, **fields: Any) -> dict[str, Any]:
    found = {"type": kind, "user_id": user, "timestamp": at, **fields}
    if item is not None:
        found["item_id"] = item
    return found
