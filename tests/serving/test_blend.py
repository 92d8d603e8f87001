"""The blend against a brute-force reference: the same scores (to the bit), reasons, order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.serving.blend import Blend, Entry, K
from relevo.serving.results import Reason

REASONS = [Reason("covisitation", "live"), Reason("model", "v1"), Reason("trending", "live")]
ITEMS = [f"i{n}" for n in range(12)]


def _sources(distinct: bool) -> st.SearchStrategy[list[Any]]:
    """Sources to add: each a ranked list (best first; its items distinct or not), a
    weight, a reason (often one several sources share), what it excludes, by score."""
    return st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.sampled_from(ITEMS), st.floats(-2.0, 50.0)),
                unique_by=(lambda entry: entry[0]) if distinct else None,
                max_size=10,
            ).map(lambda entries: sorted(entries, key=lambda e: -e[1])),
            st.sampled_from([0.2, 0.5, 1.0, 1.2]),
            st.sampled_from(REASONS),
            st.frozensets(st.sampled_from(ITEMS), max_size=3),
            st.booleans(),
        ),
        max_size=7,
    )


sources = _sources(distinct=True)


def reference(
    added: list[tuple[list[tuple[str, float]], float, Reason, frozenset[str], bool]],
) -> list[Entry]:
    """The blend as it was first written: a list of reasons per item, shares per entry."""
    scores: dict[str, float] = {}
    reasons: dict[str, list[Reason]] = {}
    for ranked, weight, reason, exclude, by_score in added:
        kept = [(item, score) for item, score in ranked if item not in exclude]
        best = max((score for _, score in kept), default=0.0) if by_score else 0.0
        for rank, (item, score) in enumerate(kept):
            share = max(score, 0.0) / best if best > 0 else K / (K + rank)
            scores[item] = scores.get(item, 0.0) + weight * share
            why = reasons.setdefault(item, [])
            if reason not in why:
                why.append(reason)
    order = sorted(scores, key=lambda item: (-scores[item], item))
    return [(item, scores[item], tuple(reasons[item])) for item in order]


@settings(max_examples=300, deadline=None)
@given(sources)
def test_blend_matches_the_reference(
    added: list[tuple[list[tuple[str, float]], float, Reason, frozenset[str], bool]],
) -> None:
    blend = Blend()
    for ranked, weight, reason, exclude, by_score in added:
        blend.add(iter(ranked), weight, reason, exclude=exclude, by_score=by_score)
    expected = reference(added)
    assert blend.ranked() == expected
    ranking = blend.ranking()
    assert list(ranking) == expected
    assert ranking.top(3) == [item for item, _, _ in expected[:3]]


@settings(max_examples=300, deadline=None)
@given(_sources(distinct=False), st.integers(0, 12))
def test_items_listed_twice_in_later_sources_match_the_reference(
    added: list[tuple[list[tuple[str, float]], float, Reason, frozenset[str], bool]],
    read: int,
) -> None:
    """An item a source lists twice adds both shares and its reason once (`Blend.add`
    gives a new item its combination as it first meets it); a ranking read partly
    (`top`) then iterated gives every entry as the reference does."""
    blend = Blend()
    for ranked, weight, reason, exclude, by_score in added:
        blend.add(ranked, weight, reason, exclude=exclude, by_score=by_score)
    expected = reference(added)
    ranking = blend.ranking()
    assert ranking.top(read) == [item for item, _, _ in expected[:read]]
    assert list(ranking) == expected


def test_ranking_is_computed_again_after_an_add() -> None:
    blend = Blend()
    blend.add([("a", 1.0)], 1.0, REASONS[0])
    assert blend.ranking().top(2) == ["a"]
    blend.add([("b", 1.0)], 2.0, REASONS[1])
    assert blend.ranking().top(2) == ["b", "a"]


def test_best_items_are_the_top_of_the_ranking_in_any_order() -> None:
    blend = Blend()
    blend.add([("a", 3.0), ("b", 2.0), ("c", 1.0)], 1.0, REASONS[0], by_score=True)
    assert blend.best(1) == {"a"}
    assert blend.best(2) == {"a", "b"}
    assert blend.best(10) == {"a", "b", "c"}


def test_an_item_listed_twice_counts_twice_even_in_the_first_source() -> None:
    """The first source of an empty blend is added in bulk; a repeated item still sums."""
    listed = [("a", 3.0), ("b", 2.0), ("a", 1.0)]
    for by_score in (False, True):
        blend = Blend()
        blend.add(listed, 1.0, REASONS[0], by_score=by_score)
        expected = reference([(listed, 1.0, REASONS[0], frozenset(), by_score)])
        assert blend.ranked() == expected


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0]),
        max_size=200,
    ),
    st.lists(st.integers(0, 210), max_size=4),
)
def test_a_ranking_orders_equal_scores_by_id_wherever_it_is_read(
    scores: dict[str, float], reads: list[int]
) -> None:
    """Equal scores are put in id order only as far as read (`Ranking._settle`): reads of
    any depth, in any order, give the order of the key (-score, id), each item its score."""
    blend = Blend()
    blend.scores = dict(scores)
    blend.codes = dict.fromkeys(scores, 0)
    blend._combinations = [(REASONS[0],)]
    expected = sorted(scores, key=lambda item: (-scores[item], item))
    ranking = blend.ranking()
    for count in reads:
        assert ranking.top(count) == expected[:count]
    entries = list(ranking)
    assert [item for item, _, _ in entries] == expected
    assert all(repr(score) == repr(scores[item]) for item, score, _ in entries)
    assert ranking.items == tuple(expected)
    assert len(ranking) == len(expected)
