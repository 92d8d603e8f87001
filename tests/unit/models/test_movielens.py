"""Sanity checks on MovieLens-100K when the local copy exists (never in the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relevo.models.ease import EASERecommender
from relevo.models.evaluation import evaluate_recommender, temporal_split
from relevo.models.interactions import Interactions

BESIDE_THE_PROJECT = Path(__file__).resolve().parents[4] / "shared/datasets/ml-100k/u.data"
ML100K = Path(os.environ.get("RELEVO_ML100K", BESIDE_THE_PROJECT))

pytestmark = pytest.mark.skipif(not ML100K.is_file(), reason=f"{ML100K} not present")


def test_movielens_split_shape() -> None:
    data = Interactions.from_movielens(ML100K)
    assert (data.n_users, data.n_items, len(data)) == (943, 1682, 100_000)
    split = temporal_split(data)
    assert len(split.test) == pytest.approx(20_000, rel=0.01)
    assert len(split.evaluated_users()) == 943
    assert data.item_text is not None


def test_ease_is_a_strong_baseline_on_movielens() -> None:
    split = temporal_split(Interactions.from_movielens(ML100K))
    metrics = evaluate_recommender(EASERecommender(300.0).fit(split.train), split)
    assert metrics["ndcg@20"] > 0.2
