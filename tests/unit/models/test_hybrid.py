"""The hybrid's candidate features and its fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from relevo.models.candidates import (
    DAY_MS,
    ActivityIndex,
    FeatureContext,
    build_candidates,
    feature_names,
)
from relevo.models.covisitation import CovisitationRecommender
from relevo.models.hybrid import HybridRecommender
from relevo.models.interactions import Interactions
from relevo.models.popularity import PopularityRecommender
from relevo.models.synthetic import SyntheticData


def test_activity_counts_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    entity = rng.integers(0, 20, 2000)
    times = rng.integers(1_000, 50_000, 2000)
    index = ActivityIndex.build(entity, times, 25)
    queries = rng.integers(0, 25, 500)
    at = rng.integers(0, 60_000, 500)
    for window in (None, 1, 5_000):
        got = index.count(queries, at, window)
        lower = -np.inf if window is None else at - window
        expected = [
            np.sum((entity == e) & (times <= t) & (times > lo))
            for e, t, lo in zip(queries, at, np.broadcast_to(lower, at.shape), strict=True)
        ]
        np.testing.assert_array_equal(got, expected)
    first, last = index.days_since_first_and_last(queries, at)
    for e, t, f, la in zip(queries, at, first, last, strict=True):
        before = times[(entity == e) & (times <= t)]
        if len(before) == 0:
            assert np.isnan(f)
            assert np.isnan(la)
        else:
            assert f == pytest.approx((t - before.min()) / DAY_MS, rel=1e-5)
            assert la == pytest.approx((t - before.max()) / DAY_MS, rel=1e-5)


def test_features_only_count_the_past() -> None:
    rows = [
        {"user_id": "early", "item_id": "a", "timestamp": 1 * DAY_MS},
        {"user_id": "early", "item_id": "b", "timestamp": 2 * DAY_MS},
        {"user_id": "late", "item_id": "c", "timestamp": 10 * DAY_MS},
        {"user_id": "late", "item_id": "c", "timestamp": 11 * DAY_MS},
    ]
    data = Interactions.from_records(rows)
    sources = {"popularity": PopularityRecommender().fit(data)}
    cands = build_candidates(
        sources, np.array([0]), 5, data.to_csr(binary=True), FeatureContext.build(data)
    )
    names = feature_names(["popularity"])
    assert cands.features.shape == (len(cands.items), len(names))
    row = cands.features[cands.items.tolist().index(2)]
    # Item c is touched on days 10-11, after user "early"'s last day: it has no past yet.
    assert row[names.index("item_count_before")] == 0
    assert np.isnan(row[names.index("item_days_since_first")])


def test_candidates_exclude_seen_items_and_carry_each_source_rank(
    tastes: SyntheticData,
) -> None:
    data = tastes.interactions
    sources = {
        "popularity": PopularityRecommender().fit(data),
        "covisitation": CovisitationRecommender().fit(data),
    }
    seen = data.to_csr(binary=True)
    users = np.arange(10)
    cands = build_candidates(sources, users, 5, seen, FeatureContext.build(data), batch_size=3)
    assert cands.group_sizes.sum() == len(cands.items)
    assert not np.any(np.asarray(seen[cands.users, cands.items]))
    names = feature_names(list(sources))
    ranks = cands.features[:, names.index("popularity_rank")]
    for user in users:
        listed = cands.items[(cands.users == user) & (ranks < 5)]
        top, _ = sources["popularity"].recommend_indices([user], 5)
        assert sorted(listed.tolist()) == sorted(top[0].tolist())


def test_hybrid_without_labels_falls_back_to_rank_fusion() -> None:
    # One interaction per user: nothing to split, so no ranker can be trained.
    rows = [{"user_id": f"u{k}", "item_id": f"i{k % 3}", "timestamp": k} for k in range(9)]
    model = HybridRecommender().fit(Interactions.from_records(rows))
    assert model.booster is None
    ids, scores = model.recommend(["u0"], k=2)
    assert ids[0].tolist() == ["i1", "i2"]
    assert np.all(np.isfinite(scores))


def test_hybrid_records_stages_and_chosen_source_params(tastes: SyntheticData) -> None:
    model = HybridRecommender(sources=["covisitation", "popularity"], per_source=10)
    model.fit(tastes.interactions)
    assert model.booster is not None
    assert {"tuning", "features", "ranker"} <= set(model.timings)
    assert set(model.source_params or {}) == {"covisitation", "popularity"}
    assert len(model.tuning_report["covisitation"]) == 6
    # Re-creating from params() reuses the chosen parameters instead of tuning again.
    again = HybridRecommender(**model.params()).fit(tastes.interactions)
    assert again.tuning_report == {}
    np.testing.assert_array_equal(
        again.recommend_indices(np.arange(20), 5)[0], model.recommend_indices(np.arange(20), 5)[0]
    )


def test_hybrid_leaves_out_sources_that_cannot_work(tastes: SyntheticData) -> None:
    assert "content" in HybridRecommender().source_names(tastes.interactions)
    no_text = tastes.interactions.subset(np.ones(len(tastes.interactions), dtype=bool))
    object.__setattr__(no_text, "item_text", None)
    assert "content" not in HybridRecommender().source_names(no_text)
    with pytest.raises(ValueError, match="unknown hybrid sources"):
        HybridRecommender(sources=["nope"]).source_names(tastes.interactions)


def test_shared_scores_shortcut_matches_top_k() -> None:
    import scipy.sparse as sp

    from relevo.models.base import top_k
    from relevo.models.candidates import _shared_top

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, 40).astype(np.float32)  # many ties
    mask = rng.random((30, 40)) < 0.3
    mask[0] = True  # one user saw everything: a row of padding
    seen = sp.csr_matrix(mask, dtype=np.float32)
    dense = np.broadcast_to(scores, seen.shape).copy()
    dense[seen.toarray() > 0] = -np.inf
    want_idx, want_top = top_k(dense, 8)
    got_idx, got_top = _shared_top(scores, sp.csr_matrix(seen), 8)
    np.testing.assert_array_equal(got_top, want_top)
    finite = np.isfinite(want_top)
    np.testing.assert_array_equal(got_idx[finite], want_idx[finite])
    assert np.all(got_idx[~finite] == -1)
