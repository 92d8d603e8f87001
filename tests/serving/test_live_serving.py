"""Acceptance, without any training: live co-visitation, new items, new users, business rules."""

from __future__ import annotations

from relevo.clock import ManualClock
from relevo.engine import Engine
from tests.serving.conftest import MINUTE, T0, view, with_catalog


def sources(found: object) -> set[str]:
    assert hasattr(found, "items")
    return {reason.source for item in found.items for reason in item.reasons}


async def sessions_a_then_b(engine: Engine, clock: ManualClock, a: str, b: str) -> None:
    for n in range(4):
        at = T0 + n * 60 * MINUTE
        clock.set(at + MINUTE)
        await engine.ingest([view(f"s{n}", a, at), view(f"s{n}", b, at + MINUTE)])


async def test_co_visitation_recommends_b_after_a_without_training(
    engine: Engine, clock: ManualClock
) -> None:
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "sho-001", "boo-007")
    # Trending alone would not put boo-007 first for a visitor of sho-001: shoes lead there.
    clock.advance(60 * MINUTE)
    await engine.ingest([view(f"x{n}", "sho-010", clock.now_ms()) for n in range(5)])
    await engine.ingest([view("newcomer", "sho-001", clock.now_ms())])
    found = await engine.recommend("newcomer", 5)
    assert found.items[0].item_id == "boo-007"
    assert found.items[0].reasons[0].source == "covisitation"
    assert found.items[0].reasons[0].model_version == "live"
    assert found.model_version is None
    assert found.fallback
    assert "sho-001" not in {item.item_id for item in found.items}  # seen


async def test_a_click_made_a_moment_ago_changes_the_next_answer(
    engine: Engine, clock: ManualClock
) -> None:
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "kit-003", "toy-011")
    clock.advance(60 * MINUTE)
    await engine.ingest([view(f"x{n}", "hom-020", clock.now_ms()) for n in range(6)])
    before = await engine.recommend("shopper", 5)
    assert before.items[0].item_id == "hom-020"
    await engine.ingest([{**view("shopper", "kit-003", clock.now_ms()), "type": "click"}])
    after = await engine.recommend("shopper", 5)
    assert after.items[0].item_id == "toy-011"


async def test_a_brand_new_item_with_attributes_has_similar_items(engine: Engine) -> None:
    await with_catalog(engine)
    new = {
        "item_id": "new-boot",
        "title": "Eco hiking boot",
        "category": "shoes",
        "tags": ["hiking-boot", "eco"],
        "brand": "Acme",
        "text": "Eco hiking boot from the shoes department.",
    }
    await engine.upsert_items([new])
    found = await engine.similar_items("new-boot", 5)
    assert len(found.items) == 5
    assert sources(found) <= {"attributes", "catalog"}
    assert "attributes" in sources(found)
    docs = [await engine.item(item.item_id) for item in found.items]
    assert all(doc is not None and doc["category"] == "shoes" for doc in docs)
    assert any(doc is not None and "hiking-boot" in doc["tags"] for doc in docs[:2])


async def test_a_brand_new_user_gets_a_context_aware_list(
    engine: Engine, clock: ManualClock
) -> None:
    await with_catalog(engine)
    clock.set(T0 + 60 * MINUTE)
    trending = [view(f"t{n}", item, T0 + n * MINUTE) for n, item in enumerate(
        ["boo-001", "boo-002", "boo-002", "sho-005", "sho-005", "sho-005", "kit-009"]
    )]  # fmt: skip
    await engine.ingest(trending)
    anywhere = await engine.recommend("first-visit", 3)
    on_books = await engine.recommend("first-visit", 3, category="books")
    on_a_pan = await engine.recommend("first-visit", 3, context={"item_id": "kit-001"})
    assert [i.item_id for i in anywhere.items][:1] == ["sho-005"]
    assert [i.item_id for i in on_books.items][:2] == ["boo-002", "boo-001"]
    assert [i.item_id for i in on_a_pan.items][:1] == ["kit-009"]  # trending in the page's category
    assert all(found.fallback and len(found.items) == 3 for found in (anywhere, on_books, on_a_pan))
    assert all(i.item_id.startswith("boo-") for i in on_books.items)


async def test_out_of_stock_items_are_never_recommended(engine: Engine, clock: ManualClock) -> None:
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "out-001", "out-002")
    await sessions_a_then_b(engine, clock, "out-001", "out-003")
    await engine.upsert_items([{"item_id": "out-002", "category": "outdoor", "in_stock": False}])
    await engine.ingest([view("hiker", "out-001", clock.now_ms())])
    found = await engine.recommend("hiker", 10)
    ids = [item.item_id for item in found.items]
    assert ids[0] == "out-003"
    assert "out-002" not in ids
    similar = await engine.similar_items("out-001", 10)
    assert "out-002" not in [item.item_id for item in similar.items]


async def test_seen_items_are_excluded_only_when_asked(engine: Engine, clock: ManualClock) -> None:
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "hom-001", "hom-002")
    await engine.ingest(
        [view("u", "hom-002", clock.now_ms()), view("u", "hom-001", clock.now_ms() + 1)]
    )
    clock.advance(1)
    excluded = await engine.recommend("u", 5)
    included = await engine.recommend("u", 5, exclude_seen=False)
    assert "hom-002" not in [i.item_id for i in excluded.items]
    assert included.items[0].item_id == "hom-002"


async def test_candidates_restrict_the_answer(engine: Engine, clock: ManualClock) -> None:
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "bea-001", "bea-002")
    await engine.ingest([view("u", "bea-001", clock.now_ms())])
    found = await engine.recommend("u", 3, candidates=["toy-001", "bea-002"])
    assert [item.item_id for item in found.items] == ["bea-002", "toy-001"]


async def test_repeated_requests_reuse_the_blend_but_never_serve_out_of_stock(
    engine: Engine, clock: ManualClock
) -> None:
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "toy-001", "toy-002")
    await engine.ingest([view("kid", "toy-001", clock.now_ms())])
    first = await engine.recommend("kid", 5)
    misses = engine.serving.cache.misses
    again = await engine.recommend("kid", 5)
    assert engine.serving.cache.misses == misses  # answered from the cache
    assert again == first
    assert first.items[0].item_id == "toy-002"
    await engine.upsert_items([{"item_id": "toy-002", "category": "toys", "in_stock": False}])
    third = await engine.recommend("kid", 5)
    assert engine.serving.cache.misses == misses
    assert "toy-002" not in [item.item_id for item in third.items]
    await engine.ingest([view("kid", "toy-003", clock.now_ms() + 1)])  # invalidates
    await engine.recommend("kid", 5)
    assert engine.serving.cache.misses == misses + 1


async def test_a_decisions_entries_are_the_recommended_items(
    engine: Engine, clock: ManualClock
) -> None:
    """`recommend_entries` (what a decision reads) gives `recommend`'s items, in order, as
    (item id, score, reasons) tuples: for users with and without history, in contexts,
    with seen items kept or excluded, answered fresh or from the answer cache."""
    await with_catalog(engine)
    await sessions_a_then_b(engine, clock, "sho-001", "boo-007")
    serving = engine.serving
    for user in ("s0", "s3", "nobody"):
        for context in ({}, {"item_id": "sho-010"}, {"category": "books"}):
            for exclude_seen in (False, True):
                for k in (3, 50):
                    found = await serving.recommend(
                        user, k, context=context, exclude_seen=exclude_seen
                    )
                    entries = await serving.recommend_entries(
                        user, k, context=context, exclude_seen=exclude_seen
                    )
                    assert entries == [(i.item_id, i.score, i.reasons) for i in found.items]
