"""Registry-driven checks: every model in the catalog goes through the same tests.

Like River's ``checks/``: a model added to `catalog.CATALOG` (or
`CHECK_VARIANTS`) is picked up here with no new test code. The data has a
known answer (see `synthetic.latent_tastes`): users with a sharp taste must be
recommended unseen items of their favourite topic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from relevo.models.base import NotFittedError, Recommender
from relevo.models.catalog import CATALOG, CHECK_VARIANTS, ModelSpec
from relevo.models.synthetic import SyntheticData

SPECS = {**CATALOG, **CHECK_VARIANTS}


@pytest.fixture(scope="module", params=sorted(SPECS))
def fitted(request: pytest.FixtureRequest, tastes: SyntheticData) -> tuple[ModelSpec, Recommender]:
    spec = SPECS[request.param]
    return spec, spec.build().fit(tastes.interactions)


def _sharp_users(tastes: SyntheticData) -> np.ndarray:
    """Users whose every interaction is in their favourite topic."""
    data = tastes.interactions
    in_topic = tastes.item_topics[data.items] == tastes.user_topics[data.users]
    off = np.bincount(data.users[~in_topic], minlength=data.n_users)
    return np.flatnonzero(off == 0)


def test_recommends_unseen_items_of_the_users_taste(
    fitted: tuple[ModelSpec, Recommender], tastes: SyntheticData
) -> None:
    spec, model = fitted
    users = _sharp_users(tastes)
    assert len(users) > 50
    idx, scores = model.recommend_indices(users, k=5)
    assert idx.shape == (len(users), 5)
    assert np.all(np.diff(scores, axis=1) <= 0), "scores must be sorted best first"
    seen = tastes.interactions.to_csr(binary=True)
    assert not np.any(np.asarray(seen[np.repeat(users, 5), idx.ravel()])), "a seen item"
    precision = np.mean(tastes.item_topics[idx] == tastes.user_topics[users][:, None])
    if spec.personalized:
        assert precision > 0.8, f"{spec.name}: only {precision:.2f} of top-5 in the user's topic"
    else:
        # One global ranking for everyone: every user's row of scores is the same.
        rows = model.score_users(users)
        np.testing.assert_array_equal(rows, np.broadcast_to(rows[0], rows.shape))


def test_recommend_maps_external_ids_and_batches(
    fitted: tuple[ModelSpec, Recommender], tastes: SyntheticData
) -> None:
    _, model = fitted
    user_ids = tastes.interactions.user_ids[:3].tolist()
    ids, scores = model.recommend(user_ids, k=4)
    idx, idx_scores = model.recommend_indices(np.arange(3), k=4)
    assert ids.shape == (3, 4)
    assert ids.tolist() == tastes.interactions.item_ids[idx].tolist()
    np.testing.assert_allclose(scores, idx_scores)
    single, _ = model.recommend(user_ids[0], k=4)
    assert single.tolist() == ids[:1].tolist()


def test_unknown_users_get_popular_items(fitted: tuple[ModelSpec, Recommender]) -> None:
    _, model = fitted
    ids, scores = model.recommend(["never-seen"], k=3)
    popular = np.argsort(-model.item_popularity, kind="stable")[:3]  # type: ignore[operator]
    assert ids[0].tolist() == model.item_ids[popular].tolist()  # type: ignore[index]
    assert np.all(np.isfinite(scores))


def test_exclude_seen_false_may_return_seen_items(
    fitted: tuple[ModelSpec, Recommender], tastes: SyntheticData
) -> None:
    _, model = fitted
    idx, _ = model.recommend_indices([0], k=tastes.interactions.n_items, exclude_seen=False)
    assert sorted(idx[0].tolist()) == list(range(tastes.interactions.n_items))


def test_similar_items_share_the_topic(
    fitted: tuple[ModelSpec, Recommender], tastes: SyntheticData
) -> None:
    spec, model = fitted
    hits = []
    for item in range(0, 40, 4):
        ids, scores = model.similar_items(str(item), k=3)
        assert str(item) not in ids.tolist()
        assert np.all(np.diff(scores) <= 0)
        topics = tastes.item_topics[[int(i) for i in ids if i is not None]]
        hits.append(np.mean(topics == tastes.item_topics[item]))
    assert np.mean(hits) > 0.6, f"{spec.name}: similar items cross topics"
    with pytest.raises(KeyError):
        model.similar_items("no-such-item")


def test_save_load_round_trip(
    fitted: tuple[ModelSpec, Recommender], tastes: SyntheticData, tmp_path: Path
) -> None:
    spec, model = fitted
    model.save(tmp_path / spec.name)
    loaded = Recommender.load(tmp_path / spec.name)
    assert type(loaded) is type(model)
    assert loaded.params() == model.params()
    users = np.arange(tastes.interactions.n_users)
    a_idx, a_scores = model.recommend_indices(users, k=10)
    b_idx, b_scores = loaded.recommend_indices(users, k=10)
    np.testing.assert_array_equal(a_idx, b_idx)
    np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)
    assert spec.cls.load(tmp_path / spec.name).params() == model.params()


def test_unfitted_model_refuses_to_recommend() -> None:
    for spec in SPECS.values():
        with pytest.raises(NotFittedError):
            spec.build().recommend(["u"], k=1)
