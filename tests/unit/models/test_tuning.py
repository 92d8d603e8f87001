"""Hyper-parameter selection on the validation split."""

from __future__ import annotations

import math

from relevo.models.evaluation import temporal_split, validation_split
from relevo.models.knn import ItemKNNRecommender
from relevo.models.popularity import PopularityRecommender
from relevo.models.synthetic import SyntheticData
from relevo.models.tuning import grid_points, tune


def test_grid_points_of_an_empty_grid_is_one_default_point() -> None:
    assert grid_points({}) == [{}]


def test_tune_picks_the_best_validation_score(tastes: SyntheticData) -> None:
    inner = validation_split(temporal_split(tastes.interactions).train)
    result = tune(ItemKNNRecommender, {"neighbors": [1, 30]}, inner, metric="ndcg@10")
    assert len(result.trials) == 2
    assert result.best_score == max(score for _, score in result.trials)
    assert result.best_params == {"neighbors": 30}


def test_a_single_point_is_not_fitted(tastes: SyntheticData) -> None:
    inner = validation_split(tastes.interactions)
    result = tune(PopularityRecommender, {}, inner, base_params={"half_life_days": 3.0})
    assert result.best_params == {"half_life_days": 3.0}
    assert math.isnan(result.best_score)
