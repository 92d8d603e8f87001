"""The catalog's order is when items were first listed (``created_at``), not their last
update: a shop's stock sync must not make old items "new", nor move pages of a listing."""

from __future__ import annotations

from relevo.clock import ManualClock, to_iso
from relevo.engine import Engine
from tests.serving.conftest import MINUTE, T0, EngineFactory

REFRESH = 1_000


async def listed(engine: Engine, clock: ManualClock, *item_ids: str) -> None:
    """Each item upserted a minute after the one before."""
    for item_id in item_ids:
        clock.advance(MINUTE)
        await engine.upsert_items([{"item_id": item_id, "category": "shoes"}])


async def listing(engine: Engine) -> list[str]:
    items, _ = await engine.items()
    return [item["item_id"] for item in items]


async def newest(engine: Engine) -> list[str]:
    """What a user without history is shown: the catalog, newest first."""
    found = await engine.recommend("nobody", k=3)
    assert {reason.source for item in found.items for reason in item.reasons} == {"catalog"}
    return [item.item_id for item in found.items]


async def test_an_update_keeps_the_items_place_and_when_it_was_listed(
    engine: Engine, clock: ManualClock
) -> None:
    await listed(engine, clock, "a", "b", "c")
    created = (await engine.item("a") or {})["created_at"]
    clock.advance(MINUTE)
    await engine.upsert_items([{"item_id": "a", "category": "shoes", "in_stock": False}])
    assert await listing(engine) == ["a", "b", "c"]
    item = await engine.item("a") or {}
    assert item["created_at"] == created == to_iso(T0 + MINUTE)
    assert item["updated_at"] == to_iso(clock.now_ms())
    assert item["in_stock"] is False


async def test_the_newest_items_are_the_last_listed_not_the_last_updated(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    clock.set(T0)
    engine = await make_engine(answer_cache_ttl=0, catalog_refresh=REFRESH)
    await listed(engine, clock, "a", "b", "c")
    assert await newest(engine) == ["c", "b", "a"]
    clock.advance(MINUTE)
    await engine.upsert_items([{"item_id": "a", "category": "shoes", "price": 9.5}])
    clock.advance(REFRESH)
    assert await newest(engine) == ["c", "b", "a"]
    await listed(engine, clock, "d")
    assert await newest(engine) == ["d", "c", "b"]


async def test_a_given_created_at_is_kept_until_another_is_given(
    engine: Engine, clock: ManualClock
) -> None:
    """A shop that knows when an item was listed says so once (an import of an old
    catalog); later upserts without it keep it, and one with another moves the item."""
    await listed(engine, clock, "a", "b")
    await engine.upsert_items([{"item_id": "old", "created_at": T0 - 30 * MINUTE}])
    assert await listing(engine) == ["old", "a", "b"]
    await engine.upsert_items([{"item_id": "old", "title": "An old favourite"}])
    assert (await engine.item("old") or {})["created_at"] == to_iso(T0 - 30 * MINUTE)
    assert await listing(engine) == ["old", "a", "b"]
    await engine.upsert_items([{"item_id": "old", "created_at": clock.now_ms() + MINUTE}])
    assert await listing(engine) == ["a", "b", "old"]
