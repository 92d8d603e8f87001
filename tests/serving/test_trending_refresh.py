"""A process's copies of trending (`relevo.live.shared`): exact where it applies events
itself, at most `RELEVO_TRENDING_REFRESH` old where other processes apply them.

Two engines on one Redis are two processes: one applies the events (inline, as an API
process or a worker would), the other only reads. The shared manual clock drives the
refresh.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.engine import Engine
from relevo.live import shared as shared_module
from relevo.live.models import LiveModels
from relevo.live.shared import SharedTops
from relevo.store.base import DecayedAdd, DecayedRead, StoredTop
from relevo.store.memory import MemoryStore
from tests.serving.conftest import MINUTE, T0, EngineFactory, ProcessPair

REFRESH = 1_000


def viewed(user: str, item: str, at: int, category: str = "shoes") -> dict[str, Any]:
    return {"type": "view", "user_id": user, "item_id": item, "category": category, "timestamp": at}


def views(item: str, count: int, at: int, category: str = "shoes") -> list[dict[str, Any]]:
    return [viewed(f"{item}-fan-{n}", item, at, category) for n in range(count)]


async def trending(engine: Engine) -> list[str]:
    signals = await engine.live.read(categories=["shoes"], overall=True)
    assert [item for item, _ in signals.by_category["shoes"]] == [
        item for item, _ in signals.trending
    ]
    return [item for item, _ in signals.trending]


async def test_another_process_sees_new_trending_within_the_refresh(
    two_processes: ProcessPair, clock: ManualClock
) -> None:
    applying, other = await two_processes(trending_refresh=REFRESH)
    await applying.ingest(views("boot", 2, T0))
    assert await trending(other) == ["boot"]

    await applying.ingest(views("sandal", 5, T0))
    assert await trending(applying) == ["sandal", "boot"]  # at once where it was applied
    clock.advance(REFRESH - 1)
    assert await trending(other) == ["boot"]  # its copy, read a refresh ago at most
    clock.advance(1)
    assert await trending(other) == ["sandal", "boot"]


async def test_without_the_refresh_every_read_is_live(
    two_processes: ProcessPair, clock: ManualClock
) -> None:
    applying, other = await two_processes(trending_refresh=0)
    await applying.ingest(views("boot", 2, T0))
    assert await trending(other) == ["boot"]
    await applying.ingest(views("sandal", 5, T0))
    assert await trending(other) == ["sandal", "boot"]  # the clock did not move


async def test_where_events_are_applied_the_copies_answer_as_the_store(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    """Whatever is applied and whenever it is read, the process that applies the events
    reads through its copies exactly what it reads from the store (the same floats: the
    copies are decayed per read from the scores as stored)."""
    clock.set(T0)
    engine = await make_engine(trending_refresh=10 * MINUTE)
    live = LiveModels(
        engine.store,
        clock,
        covisitation_half_life_ms=engine.live.covisitation_half_life_ms,
        trending_half_life_ms=engine.live.trending_half_life_ms,
    )  # the same models, read from the store each time
    rng = random.Random(3)
    categories = ["shoes", "bags", "hats"]
    for step in range(12):
        category = rng.choice(categories)
        items = [f"{category}-{rng.randrange(12)}" for _ in range(rng.randrange(1, 6))]
        await engine.ingest(
            [viewed(f"s{step}-{n}", item, clock.now_ms(), category) for n, item in enumerate(items)]
        )
        for _ in range(3):
            clock.advance(rng.randrange(1, 4 * MINUTE))
            asked: dict[str, Any] = {
                "anchors": items[:2],
                "categories": rng.sample(categories, 2),
                "trending_limit": rng.choice([5, 20]),
            }
            assert await engine.live.read(**asked) == await live.read(**asked)


async def test_a_read_that_began_before_an_invalidation_is_not_kept(clock: ManualClock) -> None:
    """A process that applies events drops its copies after writing; a read of the store
    that was already on its way may hold the sets from before that write: it answers the
    request it was made for, but is not kept for the next ones."""

    class WriteDuringRead(MemoryStore):
        reads = 0

        async def decayed_top_stored(self, reads: Sequence[DecayedRead]) -> list[StoredTop]:
            self.reads += 1
            found = await super().decayed_top_stored(reads)
            if self.reads == 1:
                shared.invalidate()  # a write lands while the first read is on its way
            return found

    store = WriteDuringRead(clock)
    shared = SharedTops(store, max_age_ms=REFRESH)
    read = DecayedRead("live:{trending:shoes}", 3_600_000, 5)
    await shared.read([], [read], T0)
    await shared.read([], [read], T0)
    assert store.reads == 2  # the first was not kept
    await shared.read([], [read], T0)
    assert store.reads == 2  # the second was


async def test_copies_hold_a_bounded_number_of_members(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site with many categories starts over past `MAX_KEPT_MEMBERS` members, over all
    copies, rather than keeping every category's trending; refreshing a copy counts it
    once."""
    monkeypatch.setattr(shared_module, "MAX_KEPT_MEMBERS", 10)
    store = MemoryStore(clock)
    adds = [
        DecayedAdd(f"{{trending:c{n}}}", {f"i{k}": 1.0 for k in range(4)}, T0) for n in range(4)
    ]
    await store.decayed_add(adds, 3_600_000, max_len=10)
    shared = SharedTops(store, max_age_ms=REFRESH)
    reads = [DecayedRead(f"{{trending:c{n}}}", 3_600_000, 4) for n in range(4)]
    for read in reads[:2]:
        await shared.read([], [read], T0)
        await shared.read([], [read], T0 + REFRESH)  # old: read again, replaced
    assert shared.kept_members == 8
    await shared.read([], [reads[2]], T0 + REFRESH)  # 12 would pass 10: starts over
    assert shared.kept_members == 4
    await shared.read([], reads[:1], T0 + REFRESH)
    assert shared.kept_members == 8
