"""Removing an item from the catalog (`DELETE /v1/items/{id}`): gone from the listing
and from every answer, though live signals still name it; logged, archived, replayed in
order with the item's upserts."""

from __future__ import annotations

from relevo.catalog import removal_record
from relevo.clock import ManualClock, to_iso
from relevo.engine import Engine
from relevo.eventlog.archive import read_items
from relevo.live.attributes import catalog_change
from tests.serving.conftest import MINUTE, T0, EngineFactory, ProcessPair, view, with_catalog
from tests.serving.test_live_serving import sessions_a_then_b

REFRESH = 1_000


async def recommended(engine: Engine, user: str) -> list[str]:
    return [item.item_id for item in (await engine.recommend(user, 10)).items]


async def test_a_removed_item_leaves_the_listing_and_is_removed_again_harmlessly(
    engine: Engine,
) -> None:
    await with_catalog(engine)
    _, total = await engine.items()
    assert await engine.remove_item("sho-001") is True
    assert await engine.item("sho-001") is None
    items, after = await engine.items(limit=1000)
    assert after == total - 1
    assert "sho-001" not in {item["item_id"] for item in items}
    assert await engine.remove_item("sho-001") is False  # idempotent: not an error
    assert await engine.remove_item("never-was") is False
    assert (await engine.items())[1] == total - 1


async def test_no_answer_shows_a_removed_item_that_live_signals_still_name(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    clock.set(T0)
    engine = await make_engine(answer_cache_ttl=0)
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "sho-001", "boo-007")  # co-visited, trending
    await engine.ingest([view("newcomer", "sho-001", clock.now_ms())])
    assert (await recommended(engine, "newcomer"))[0] == "boo-007"
    similar = await engine.similar_items("sho-001", 10)
    assert "boo-007" in {item.item_id for item in similar.items}

    await engine.remove_item("boo-007")
    assert "boo-007" not in await recommended(engine, "newcomer")
    assert "boo-007" not in await recommended(engine, "someone-else")
    similar = await engine.similar_items("sho-001", 10)
    assert "boo-007" not in {item.item_id for item in similar.items}


async def test_an_item_upserted_after_its_removal_is_listed_anew(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.upsert_items([{"item_id": "a"}, {"item_id": "b"}])
    clock.advance(MINUTE)
    await engine.remove_item("a")
    clock.advance(MINUTE)
    await engine.upsert_items([{"item_id": "a", "title": "Back in the range"}])
    listing = [item["item_id"] for item in (await engine.items())[0]]
    assert listing == ["b", "a"]
    assert (await engine.item("a") or {})["created_at"] == to_iso(clock.now_ms())


async def test_another_process_stops_showing_it_within_the_refresh(
    two_processes: ProcessPair, clock: ManualClock
) -> None:
    applying, other = await two_processes(catalog_refresh=REFRESH, answer_cache_ttl=0)
    await with_catalog(applying)
    await sessions_a_then_b(applying, clock, "sho-001", "boo-007")
    await applying.ingest([view("newcomer", "sho-001", clock.now_ms())])
    assert (await recommended(other, "newcomer"))[0] == "boo-007"
    await applying.remove_item("boo-007")
    clock.advance(REFRESH)
    assert "boo-007" not in await recommended(other, "newcomer")


async def test_the_archive_knows_the_removal(engine: Engine) -> None:
    """Models are trained on the catalog as the archive knows it: without removed items."""
    await with_catalog(engine)
    await engine.remove_item("sho-001")
    await engine.archiver.flush()
    archived = read_items(engine.settings.archive_path)
    assert "sho-001" not in archived
    assert "sho-002" in archived


def test_the_last_record_of_an_item_in_a_batch_decides() -> None:
    """Upserts and removals of one item in one applied batch: its last record wins."""
    upsert = {"item_id": "x", "category": "c", "updated_at": 1}
    change = catalog_change([upsert, removal_record("x", 2)], {})
    assert (change.items, change.removed, change.item_ids) == ([], ["x"], ["x"])
    change = catalog_change([removal_record("x", 2), {**upsert, "updated_at": 3}], {})
    assert [doc["item_id"] for doc in change.items] == ["x"]
    assert change.removed == []
    assert change.items[0]["created_at"] == 3
