"""The live models on both backends: co-visitation, trending, attribute neighbours."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relevo import catalog
from relevo.clock import ManualClock
from relevo.engine import Engine
from relevo.live import attributes
from relevo.live.models import _merge_tops
from relevo.store import keys
from relevo.store.base import DecayedRead
from tests.live.conftest import MINUTE, T0, event


async def test_sessions_showing_a_then_b_make_b_a_neighbour_of_a(
    engine: Engine, clock: ManualClock
) -> None:
    for n in range(3):
        at = T0 + n * 60 * MINUTE
        clock.set(at + MINUTE)
        await engine.ingest(
            [event("view", f"u{n}", at, "A"), event("view", f"u{n}", at + MINUTE, "B")]
        )
    signals = await engine.live.read(anchors=["A", "B"], overall=False)
    assert [item for item, _ in signals.covisited[0]] == ["B"]
    assert [item for item, _ in signals.covisited[1]] == ["A"]
    forward, backward = signals.covisited[0][0][1], signals.covisited[1][0][1]
    assert backward == pytest.approx(forward / 2)


async def test_items_of_different_sessions_are_not_paired(
    engine: Engine, clock: ManualClock
) -> None:
    clock.set(T0 + 3 * 60 * MINUTE)
    await engine.ingest(
        [
            event("view", "u", T0, "A"),
            event("view", "u", T0 + 2 * 60 * MINUTE, "B"),  # after 30 minutes idle
            event("view", "v", T0, "C", session_id="s1"),
            event("view", "v", T0 + MINUTE, "D", session_id="s2"),  # the client's new session
        ]
    )
    signals = await engine.live.read(anchors=["A", "C"], overall=False)
    assert signals.covisited == [[], []]


async def test_a_redelivered_event_counts_once(engine: Engine, clock: ManualClock) -> None:
    clock.set(T0 + MINUTE)
    batch = [
        event("view", "u", T0, "A", event_id="e1"),
        event("click", "u", T0 + MINUTE, "B", event_id="e2", category="shoes"),
    ]
    await engine.ingest(batch)
    first = await engine.live.read(anchors=["A"], categories=["shoes"])
    report = await engine.ingest(batch)
    assert report.count("duplicate") == 2
    assert await engine.live.read(anchors=["A"], categories=["shoes"]) == first
    assert first.covisited == [[("B", pytest.approx(2.0))]]
    assert first.by_category == {"shoes": [("B", pytest.approx(2.0))]}
    assert [item for item, _ in first.trending] == ["B", "A"]


async def test_trending_decays_so_recent_activity_wins(engine: Engine, clock: ManualClock) -> None:
    day = 24 * 60 * MINUTE
    clock.set(T0 + 2 * day)
    old = [event("purchase", f"u{n}", T0, "old", category="c") for n in range(3)]  # 15
    new = [event("view", f"v{n}", T0 + 2 * day, "new", category="c") for n in range(5)]  # 5
    await engine.ingest(old + new)
    signals = await engine.live.read(categories=["c"], overall=False)
    assert signals.by_category["c"] == [
        ("new", pytest.approx(5.0)),
        ("old", pytest.approx(15.0 / 4)),
    ]


async def test_a_new_item_has_attribute_neighbours_from_its_first_upsert(engine: Engine) -> None:
    await engine.upsert_items(
        [
            {"item_id": "boot-1", "category": "shoes", "tags": ["hiking"], "title": "Hiking boot"},
            {"item_id": "sandal", "category": "shoes", "title": "Beach sandal"},
            {"item_id": "tent", "category": "outdoor", "tags": ["hiking"], "title": "Tent"},
            {"item_id": "pan", "category": "kitchen", "title": "Frying pan"},
        ]
    )
    new = {"item_id": "boot-2", "category": "shoes", "tags": ["hiking"], "title": "Light boot"}
    await engine.upsert_items([new])
    stored = await engine.item("boot-2")
    assert stored is not None
    matches = await engine.live.attribute_matches(stored, limit=10)
    assert "pan" not in matches.candidates
    assert "boot-2" not in matches.candidates
    docs = {item_id: await engine.item(item_id) for item_id in matches.candidates}
    scores = {item_id: matches.score(doc or {}) for item_id, doc in docs.items()}
    assert max(scores, key=lambda item_id: scores[item_id]) == "boot-1"
    assert scores["boot-1"] > scores["sandal"] > 0
    assert scores["tent"] > 0


async def test_an_item_joins_a_posting_once_whatever_updates_its_stock(
    engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shop's stock sync upserts every item again and again. Were each upsert added to
    the item's postings again, the synced items would outweigh a new item, the first
    trimmed from a full posting: no attribute neighbours for the newest items."""
    monkeypatch.setattr(attributes, "POSTING_MAX", 3)
    shoes = [{"item_id": f"shoe-{n}", "category": "shoes", "title": "Shoe"} for n in range(3)]
    await engine.upsert_items(shoes)
    for _ in range(5):
        clock.advance(MINUTE)
        await engine.upsert_items([{**shoe, "in_stock": False} for shoe in shoes])
    clock.advance(MINUTE)
    await engine.upsert_items([{"item_id": "new-shoe", "category": "shoes", "title": "Shoe"}])
    assert (await engine.live.category_items("shoes", 10))[0] == "new-shoe"

    weights = await engine.store.decayed_top(
        [DecayedRead(keys.attribute_key("c:shoes"), attributes.POSTING_HALF_LIFE_MS, 10)],
        clock.now_ms(),
    )
    assert max(weight for _, weight in weights[0]) <= 1.0  # each joined once


async def test_an_item_joins_the_postings_of_the_attributes_it_gains(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.upsert_items([{"item_id": "boot", "category": "shoes", "title": "Boot"}])
    clock.advance(MINUTE)
    await engine.upsert_items([{"item_id": "boot", "category": "outdoor", "title": "Boot"}])
    assert await engine.live.category_items("outdoor", 10) == ["boot"]
    stored = await catalog.get_items(engine.store, ["boot"])
    await engine.applier.apply_items([stored["boot"]])  # delivered again: joins nothing more
    assert await engine.live.category_items("outdoor", 10) == ["boot"]
    weights = await engine.store.decayed_top(
        [DecayedRead(keys.attribute_key("c:outdoor"), attributes.POSTING_HALF_LIFE_MS, 10)],
        clock.now_ms(),
    )
    assert weights[0] == [("boot", pytest.approx(1.0))]


async def test_an_item_leaves_the_postings_it_no_longer_belongs_to(
    engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A moved or removed item makes room in its old postings at once: with postings of
    2, the boots that left `shoes` no longer crowd out the shoes listed after them."""
    monkeypatch.setattr(attributes, "POSTING_MAX", 2)
    boots = [{"item_id": f"boot-{n}", "category": "shoes", "title": "Boot"} for n in (1, 2)]
    await engine.upsert_items(boots)
    clock.advance(MINUTE)
    await engine.upsert_items([{**boots[0], "category": "outdoor"}])  # moved
    await engine.remove_item("boot-2")  # removed
    assert await engine.live.category_items("shoes", 10) == []
    assert await engine.live.category_items("outdoor", 10) == ["boot-1"]
    clock.advance(MINUTE)
    await engine.upsert_items(
        [{"item_id": f"shoe-{n}", "category": "shoes", "title": "Shoe"} for n in (1, 2)]
    )
    assert sorted(await engine.live.category_items("shoes", 10)) == ["shoe-1", "shoe-2"]


def test_an_item_given_a_token_and_removed_in_one_batch_joins_nothing() -> None:
    shoe = {"item_id": "s", "category": "shoes", "updated_at": 1}
    change = attributes.catalog_change([shoe, catalog.removal_record("s", 2)], {})
    assert (change.joined, change.left, change.removed) == ({}, {}, ["s"])


@pytest.mark.parametrize("crowded_share", [0.9, 0.1])
async def test_trending_overall_is_the_best_of_all_shards_however_they_are_filled(
    engine: Engine, clock: ManualClock, crowded_share: float
) -> None:
    """Each shard is read for its share of the best first; when one shard holds more of
    the best than that (crowded), it is read again in full: the answer is the same as
    reading every shard in full."""
    clock.set(T0 + MINUTE)
    first = keys.trending_shard_keys()[0]
    ids = (f"i{n}" for n in range(10_000))
    crowded = [item for item in ids if keys.trending_overall_key(item) == first][:40]
    spread = [f"j{n}" for n in range(40)]
    strong, weak = (crowded, spread) if crowded_share > 0.5 else (spread, crowded)
    events = [
        event("view", f"u{n}-{k}", T0, item) for n, item in enumerate(strong) for k in range(3)
    ] + [event("view", f"v{n}", T0, item) for n, item in enumerate(weak)]
    await engine.ingest(events)
    limit = 30
    signals = await engine.live.read(overall=True, trending_limit=limit)
    every_shard_in_full = await engine.store.decayed_top(
        [
            DecayedRead(key, engine.live.trending_half_life_ms, limit)
            for key in keys.trending_shard_keys()
        ],
        clock.now_ms(),
    )
    assert signals.trending == _merge_tops(every_shard_in_full, limit)
    assert {item for item, _ in signals.trending} <= set(strong)
    assert len(signals.trending) == limit


@given(
    st.lists(
        st.dictionaries(
            st.text("abc", min_size=1, max_size=3),
            st.one_of(st.sampled_from([1.0, 2.0, 0.5]), st.floats(0.0, 10.0)),
            max_size=8,
        ),
        max_size=4,
    ),
    st.integers(1, 12),
)
def test_merged_tops_are_the_best_by_score_then_member(
    shards: list[dict[str, float]], limit: int
) -> None:
    """Ties included (sorted by score alone first, then again when scores are equal)."""
    seen: set[str] = set()
    tops = []
    for shard in shards:  # disjoint, each best first, as the shards' reads are
        entries = [(member, score) for member, score in shard.items() if member not in seen]
        seen.update(shard)
        tops.append(sorted(entries, key=lambda e: (e[1], e[0]), reverse=True))
    every = sorted((e for top in tops for e in top), key=lambda e: (e[1], e[0]), reverse=True)
    assert _merge_tops(tops, limit) == every[:limit]
