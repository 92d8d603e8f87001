"""Engines with placements and experiments, on both backends, with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine

T0 = 1_767_225_600_000

PLACEMENTS: dict[str, Any] = {
    "placements": [
        {
            "id": "home_hero",
            "variants": [
                {"id": "A", "content": {"title": "Welcome"}},
                {"id": "B", "content": {"title": "Summer sale"}, "tags": ["sale"]},
                {"id": "C", "content": {"title": "New in"}},
            ],
            "default": "A",
            "policy": "rules",
        },
        {"id": "home_recs", "k": 4, "default_items": ["boo-001", "boo-002"]},
    ]
}


# In-process tests of what a decision contains give both placements room: on a busy
# 2-core machine (or a cluster) 50 ms is sometimes missed, and the deadline is tested on
# its own (tests/decisions/test_fallback.py, with PLACEMENTS' 50 ms).
RELAXED: dict[str, Any] = {
    "placements": [{**placement, "deadline_ms": 2_000} for placement in PLACEMENTS["placements"]]
}


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    clock.set(T0)
    engine = Engine(settings.model_copy(update={"demo_catalog": True}), clock)
    await engine.start(background=False)
    await engine.put_config("placements", RELAXED)
    yield engine
    await engine.stop()
