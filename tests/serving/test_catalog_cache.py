"""The catalog cache: decoded items per process, dropped when the catalog generation moves.

A catalog change reaches the process that applied it at once, and every other process
within `RELEVO_CATALOG_REFRESH` (driven here by the shared manual clock: two engines on
one Redis are two API processes).
"""

from __future__ import annotations

import gc
from array import array
from typing import Any

import orjson
import pytest

from relevo import catalog, catalog_cache
from relevo.catalog_cache import CatalogCache
from relevo.clock import ManualClock
from relevo.engine import Engine
from relevo.errors import Unavailable
from relevo.store import keys
from tests.serving.conftest import MINUTE, T0, ProcessPair, view

REFRESH = 1_000
ITEMS = [
    {"item_id": "boot-1", "category": "shoes", "tags": ["hiking"], "title": "Hiking boot"},
    {"item_id": "boot-2", "category": "shoes", "tags": ["hiking"], "title": "Light boot"},
    {"item_id": "sandal", "category": "shoes", "title": "Beach sandal"},
    {"item_id": "pan", "category": "kitchen", "title": "Frying pan"},
]


async def recommended(engine: Engine, user: str) -> list[str]:
    found = await engine.recommend(user, k=10)
    return [item.item_id for item in found.items]


async def decided(engine: Engine, user: str) -> list[str]:
    found = await engine.decide({"user_id": user, "placement": "recs"})
    assert found["fallback"] is False
    return [item["item_id"] for item in found["items"]]


async def test_an_upsert_reaches_another_process_within_the_refresh(
    two_processes: ProcessPair, clock: ManualClock
) -> None:
    applying, other = await two_processes(catalog_refresh=REFRESH, answer_cache_ttl=0)
    await applying.upsert_items(ITEMS)
    await applying.put_config(
        "placements", {"placements": [{"id": "recs", "k": 4, "deadline_ms": 2_000}]}
    )
    await other.placements.refresh()
    await applying.ingest([view("u", "boot-1", T0 - MINUTE)])
    for engine in (applying, other):
        assert "boot-2" in await recommended(engine, "u")  # an attribute neighbour of boot-1
        assert "boot-2" in await decided(engine, "u")

    new = {"item_id": "boot-3", "category": "shoes", "tags": ["hiking"], "title": "Trail boot"}
    await applying.upsert_items([{**ITEMS[1], "in_stock": False}, new])
    seen_by_applier = await recommended(applying, "u")
    assert "boot-2" not in seen_by_applier  # at once where it was applied
    assert "boot-3" in seen_by_applier

    clock.advance(REFRESH)
    seen_by_other = await recommended(other, "u")
    assert "boot-2" not in seen_by_other  # the other process, within the refresh
    assert "boot-3" in seen_by_other  # its attribute postings too, not only documents
    assert "boot-2" not in await decided(other, "u")


async def test_without_the_cache_every_read_is_live(
    two_processes: ProcessPair, clock: ManualClock
) -> None:
    applying, other = await two_processes(catalog_refresh=0, answer_cache_ttl=0)
    await applying.upsert_items(ITEMS)
    await applying.ingest([view("u", "boot-1", T0 - MINUTE)])
    assert "boot-2" in await recommended(other, "u")
    await applying.upsert_items([{**ITEMS[1], "in_stock": False}])
    assert "boot-2" not in await recommended(other, "u")  # the clock did not move


# -- the cache itself, on every store -------------------------------------------------------
async def upsert(engine: Engine, *items: dict[str, Any]) -> None:
    await engine.upsert_items(list(items))


async def test_documents_are_read_once_per_generation(engine: Engine, clock: ManualClock) -> None:
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH)
    first = await cache.items(["boot-1", "nothing", "pan"])
    assert list(first) == ["boot-1", "pan"]
    assert first["boot-1"]["title"] == "Hiking boot"
    again = await cache.items(["pan", "boot-1"])
    assert again["boot-1"] is first["boot-1"]  # held, not read and decoded again
    assert list(again) == ["pan", "boot-1"]

    await upsert(engine, {**ITEMS[0], "title": "Winter boot"}, {"item_id": "nothing"})
    clock.advance(REFRESH - 1)
    assert (await cache.items(["boot-1"]))["boot-1"]["title"] == "Hiking boot"
    clock.advance(1)  # the generation is checked again, and moved
    found = await cache.items(["boot-1", "nothing"])
    assert found["boot-1"]["title"] == "Winter boot"
    assert "nothing" in found  # an absence is not remembered past a change either


async def test_what_is_derived_from_the_catalog_is_computed_once_per_generation(
    engine: Engine, clock: ManualClock
) -> None:
    cache = CatalogCache(engine.store, clock, REFRESH)
    computed: list[int] = []

    async def compute() -> int:
        computed.append(1)
        return await engine.store.zcard(keys.ITEMS_INDEX)

    await upsert(engine, *ITEMS)
    assert [await cache.derived("count", compute) for _ in range(3)] == [4, 4, 4]
    assert len(computed) == 1
    await upsert(engine, {"item_id": "tent", "category": "outdoor"})
    clock.advance(REFRESH)
    assert await cache.derived("count", compute) == 5
    assert len(computed) == 2


async def test_a_read_overtaken_by_a_change_is_not_kept(engine: Engine, clock: ManualClock) -> None:
    """A value computed while the catalog changed may predate the change: used for the
    request that asked, never kept."""
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH)

    async def overtaken() -> str:
        cache.drop()  # the catalog changed while this was being computed
        return "stale"

    assert await cache.derived("key", overtaken) == "stale"

    async def fresh() -> str:
        return "fresh"

    assert await cache.derived("key", fresh) == "fresh"


async def test_the_cache_is_bounded(engine: Engine, clock: ManualClock) -> None:
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH, max_entries=3)
    await cache.items(["boot-1", "boot-2", "sandal"])
    await cache.items(["pan"])
    assert len(cache._docs) <= 3
    assert list(await cache.items(["boot-1", "pan"])) == ["boot-1", "pan"]


async def test_an_anchors_attribute_neighbours_are_kept_as_few_objects_the_collector_walks(
    engine: Engine, clock: ManualClock
) -> None:
    """A process keeps the attribute neighbours of every item it met as an anchor, for
    the catalog's generation: thousands of entries. Kept as pairs, each was a tracked
    object of the young generation until collected (~170 per item: collections of
    ~100,000 objects, pauses of tens of ms in the slowest decisions). Now the ids are a
    tuple of strings, which the first collection that sees it stops tracking, and the
    scores one array: a constant number of tracked objects per item."""
    await upsert(engine, *ITEMS)
    await engine.put_config(
        "placements", {"placements": [{"id": "recs", "k": 4, "deadline_ms": 2_000}]}
    )
    await engine.ingest([view("u", "boot-1", T0 - MINUTE)])
    assert "boot-2" in await decided(engine, "u")  # an attribute neighbour of boot-1

    derived = engine.catalog._derived.items()
    held = [value for key, value in derived if key[0] == "attributes"]
    assert held
    gc.collect()
    for candidates, ids, scores in held:
        assert "boot-2" in ids
        assert len(scores) == len(ids)
        assert not gc.is_tracked(candidates)
        assert not gc.is_tracked(ids)
        assert isinstance(scores, array)  # one object, however many scores


async def test_a_change_drops_only_the_documents_it_changed(
    engine: Engine, clock: ManualClock
) -> None:
    """A site that changes stock every second must not read its whole catalog again
    every second: a generation's entry in `keys.CATALOG_CHANGES` names its items, and
    only those are read again (derived values all go: attribute postings moved)."""
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH)
    before = await cache.items(["boot-1", "pan"])
    await cache.derived("count", lambda: _value(1))
    await upsert(engine, {**ITEMS[0], "in_stock": False})
    await upsert(engine, {"item_id": "tent", "category": "outdoor"})  # two generations
    clock.advance(REFRESH)
    after = await cache.items(["boot-1", "pan", "tent"])
    assert after["boot-1"]["in_stock"] is False
    assert after["pan"] is before["pan"]  # held: not read again
    assert "tent" in after
    assert await cache.derived("count", lambda: _value(2)) == 2


async def test_a_stock_update_keeps_what_is_derived_from_attributes(
    engine: Engine, clock: ManualClock
) -> None:
    """Most of a shop's catalog traffic changes stock and prices: attribute neighbours,
    postings, the item count and the newest items stay; a change of tokens, a new item
    or an item listed at another time drop them."""
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH)
    assert await cache.derived("tokens", lambda: _value(1)) == 1

    await upsert(engine, {**ITEMS[0], "in_stock": False, "price": 12.5})
    clock.advance(REFRESH)
    assert (await cache.items(["boot-1"]))["boot-1"]["in_stock"] is False
    assert await cache.derived("tokens", lambda: _value(2)) == 1

    await upsert(engine, {**ITEMS[0], "in_stock": False, "tags": ["hiking", "winter"]})
    clock.advance(REFRESH)
    assert await cache.derived("tokens", lambda: _value(3)) == 3

    await upsert(engine, {"item_id": "tent", "category": "outdoor"})  # a new item
    clock.advance(REFRESH)
    assert await cache.derived("tokens", lambda: _value(4)) == 4

    await upsert(engine, {**ITEMS[3], "created_at": T0 + MINUTE})  # listed anew
    clock.advance(REFRESH)
    assert await cache.derived("tokens", lambda: _value(5)) == 5


async def test_an_upsert_delivered_again_counts_as_a_change_of_attributes(
    engine: Engine, clock: ManualClock
) -> None:
    """A delivery that wrote the documents and stopped before recording its change (a
    crash) is delivered again and finds its own documents: that cannot be told from a
    repeated stock sync, so it counts as a change of what is derived, never as none."""
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH)
    assert await cache.derived("tokens", lambda: _value(1)) == 1
    (record,) = catalog.validate_items([{**ITEMS[0], "tags": ["winter"]}], T0 + MINUTE)
    stored = (await catalog.get_items(engine.store, ["boot-1"]))["boot-1"]
    first_delivery = {**record, "created_at": stored["created_at"]}
    await engine.store.set_many({keys.item_key("boot-1"): orjson.dumps(first_delivery)})
    await engine.applier.apply_items([record])  # delivered again, after the crash
    clock.advance(REFRESH)
    assert await cache.derived("tokens", lambda: _value(2)) == 2


async def test_the_applying_process_keeps_its_neighbours_but_not_the_stock(
    engine: Engine, clock: ManualClock
) -> None:
    await upsert(engine, *ITEMS)
    await engine.put_config(
        "placements", {"placements": [{"id": "recs", "k": 4, "deadline_ms": 2_000}]}
    )
    await engine.ingest([view("u", "boot-1", T0 - MINUTE)])
    assert "boot-2" in await decided(engine, "u")  # an attribute neighbour of boot-1
    held = dict(engine.catalog._derived)
    assert any(key[0] == "attributes" for key in held)

    await upsert(engine, {**ITEMS[1], "in_stock": False})
    kept = engine.catalog._derived
    assert all(kept.get(key) is value for key, value in held.items())
    assert "boot-2" not in await decided(engine, "u")  # out of stock: filtered out

    await upsert(engine, {**ITEMS[1], "in_stock": True, "title": "Winter boot"})
    assert not engine.catalog._derived  # its tokens changed: computed again
    assert "boot-2" in await decided(engine, "u")


async def test_the_applying_process_reads_its_own_change_once(
    engine: Engine, clock: ManualClock
) -> None:
    """The process that applied an upsert forgot its items at once: its next check of
    the generation must not forget them again (documents read twice, neighbours
    computed twice, for every upsert of a stock sync in inline mode)."""
    await upsert(engine, *ITEMS)
    clock.advance(REFRESH)
    await engine.catalog.items(["boot-1"])  # the cache knows the generation
    await upsert(engine, {**ITEMS[0], "in_stock": False})
    doc = (await engine.catalog.items(["boot-1"]))["boot-1"]
    assert doc["in_stock"] is False
    clock.advance(REFRESH)
    assert (await engine.catalog.items(["boot-1"]))["boot-1"] is doc  # not read again


async def test_a_change_of_another_process_in_between_is_still_read(
    two_processes: ProcessPair, clock: ManualClock
) -> None:
    applying, other = await two_processes(catalog_refresh=REFRESH)
    await applying.upsert_items(ITEMS)
    clock.advance(REFRESH)
    assert (await applying.catalog.items(["pan"]))["pan"]["in_stock"] is True
    await other.upsert_items([{**ITEMS[3], "in_stock": False}])
    await applying.upsert_items([{**ITEMS[0], "in_stock": False}])  # the generation after
    clock.advance(REFRESH)
    assert (await applying.catalog.items(["pan"]))["pan"]["in_stock"] is False


async def test_without_the_changes_of_a_generation_everything_is_dropped(
    engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What changed is unknown when a generation's entry is missing (trimmed, or not
    pushed yet by its writer), or when it was a bulk change: then every document goes."""
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH)
    held = (await cache.items(["pan"]))["pan"]
    await upsert(engine, {**ITEMS[0], "in_stock": False})
    await engine.store.delete([keys.CATALOG_CHANGES])
    clock.advance(REFRESH)
    again = (await cache.items(["pan"]))["pan"]
    assert again is not held  # read again
    assert again == held

    monkeypatch.setattr(catalog_cache, "CHANGED_IDS_KEPT", 1)
    await upsert(engine, {**ITEMS[0], "in_stock": True}, {**ITEMS[1], "in_stock": False})
    clock.advance(REFRESH)
    assert (await cache.items(["pan"]))["pan"] is not again


async def test_a_failed_read_of_the_changes_drops_everything(
    engine: Engine, clock: ManualClock
) -> None:
    """The generation is taken before the changes are read: if that read fails (the
    store, a cancelled request), nothing must stay that the change made stale."""

    class FailingChanges:
        """The engine's store, whose reads of the changes fail when told to."""

        fail = False

        def __getattr__(self, name: str) -> Any:
            return getattr(engine.store, name)

        async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[bytes]:
            if self.fail:
                raise Unavailable("the store is away")
            return await engine.store.list_range(key, start, stop)

    store = FailingChanges()
    await upsert(engine, *ITEMS)
    cache = CatalogCache(store, clock, REFRESH)  # type: ignore[arg-type]
    assert (await cache.items(["boot-1"]))["boot-1"]["title"] == "Hiking boot"
    await upsert(engine, {**ITEMS[0], "title": "Winter boot"})
    store.fail = True
    clock.advance(REFRESH)
    with pytest.raises(Unavailable):
        await cache.items(["boot-1"])
    store.fail = False
    assert (await cache.items(["boot-1"]))["boot-1"]["title"] == "Winter boot"


async def test_values_kept_with_a_document_are_made_again_when_it_is_read_again(
    engine: Engine, clock: ManualClock
) -> None:
    await upsert(engine, *ITEMS)
    cache = CatalogCache(engine.store, clock, REFRESH)
    titles: list[str] = []

    def title(doc: Any) -> str:
        titles.append(doc["title"])
        return str(doc["title"])

    doc = (await cache.items(["boot-1"]))["boot-1"]
    assert [cache.of_item("boot-1", doc, title) for _ in range(2)] == ["Hiking boot"] * 2
    await upsert(engine, {**ITEMS[0], "title": "Winter boot"})
    clock.advance(REFRESH)
    doc = (await cache.items(["boot-1"]))["boot-1"]
    assert cache.of_item("boot-1", doc, title) == "Winter boot"
    assert titles == ["Hiking boot", "Winter boot"]


async def _value(value: int) -> int:
    return value
