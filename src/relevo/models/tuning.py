"""Choosing hyper-parameters honestly: on a split carved from the training period.

`tune` fits one model per grid point on the validation split's train part and
scores it on the validation part (never on the test period), then returns the
winner. Baselines and the hybrid's sources are tuned by the same code, so no
model gets a better deal than another.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relevo.models.base import Recommender
from relevo.models.evaluation import Split, ranking_metrics

Grid = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class TuningResult:
    """The chosen parameters and the validation score of every grid point tried."""

    best_params: dict[str, Any]
    best_score: float
    metric: str
    trials: list[tuple[dict[str, Any], float]] = field(default_factory=list)


def grid_points(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of a parameter grid (one empty dict for an empty grid).

    >>> grid_points({"a": [1, 2], "b": ["x"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def tune(
    factory: Callable[..., Recommender],
    grid: Grid,
    validation: Split,
    *,
    metric: str = "ndcg@20",
    max_users: int | None = 5000,
    seed: int = 0,
    base_params: Mapping[str, Any] | None = None,
) -> TuningResult:
    """Fit `factory(**base_params, **point)` per grid point; keep the best on `metric`.

    `max_users` caps how many validation users are scored (a fixed random
    sample): the ranking between grid points is stable long before all users
    of a large dataset are scored.
    """
    k = int(metric.split("@")[1])
    users = validation.evaluated_users()
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    relevant = validation.relevant()
    points = grid_points(grid)
    trials: list[tuple[dict[str, Any], float]] = []
    for point in points:
        params = {**(base_params or {}), **point}
        if len(points) == 1:
            trials.append((params, float("nan")))
            break
        model = factory(**params).fit(validation.train)
        recs, _ = model.recommend_indices(users, k)
        score = ranking_metrics(recs, relevant, users, [k], n_items=model.n_items)[metric]
        trials.append((params, score))
    best_params, best_score = max(trials, key=lambda t: -np.inf if np.isnan(t[1]) else t[1])
    return TuningResult(best_params, best_score, metric, trials)
