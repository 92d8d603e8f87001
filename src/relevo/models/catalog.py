"""Every recommender relevo ships, by report name: the registry tests and `evaluate` use.

A `ModelSpec` says how to build a model, which hyper-parameters are tuned (on
a validation split of the training period, see `tuning`) and whether it is a
baseline or one of relevo's own models. Adding a model here puts it through
the shared checks in ``tests/unit/models/test_checks.py`` and into
``relevo evaluate`` with no other change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from relevo.models.als import ALSRecommender
from relevo.models.base import Recommender
from relevo.models.content import ContentRecommender
from relevo.models.covisitation import CovisitationRecommender
from relevo.models.ease import EASERecommender
from relevo.models.hybrid import HybridRecommender
from relevo.models.knn import ItemKNNRecommender
from relevo.models.popularity import PopularityRecommender
from relevo.models.tuning import Grid

Role = Literal["baseline", "relevo"]

#: The name of relevo's default recommender in reports.
DEFAULT_MODEL = "relevo"


@dataclass(frozen=True)
class ModelSpec:
    """How to build, tune and label one recommender."""

    name: str
    role: Role
    cls: type[Recommender]
    params: dict[str, Any] = field(default_factory=dict)
    grid: Grid = field(default_factory=dict)
    description: str = ""
    #: False for models whose ranking ignores the user (popularity).
    personalized: bool = True

    def build(self, **overrides: Any) -> Recommender:
        return self.cls(**{**self.params, **overrides})


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "popularity",
            "baseline",
            PopularityRecommender,
            description="most interacted-with items in the training period",
            personalized=False,
        ),
        ModelSpec(
            "item-knn",
            "baseline",
            ItemKNNRecommender,
            grid={"neighbors": [20, 50, 100, 200, 400]},
            description="item-item cosine neighbourhood",
        ),
        ModelSpec(
            "implicit-als",
            "baseline",
            ALSRecommender,
            params={"weighting": "binary"},
            grid={"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0]},
            description="implicit's ALS on the binary matrix",
        ),
        ModelSpec(
            "ease",
            "baseline",
            EASERecommender,
            grid={"regularization": [50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0]},
            description="closed-form linear item-item model (Steck 2019)",
        ),
        ModelSpec(
            "relevo-cf",
            "relevo",
            ALSRecommender,
            params={"weighting": "bm25"},
            grid={"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0]},
            description="ALS on event-weighted, BM25-damped confidences",
        ),
        ModelSpec(
            "relevo-covisitation",
            "relevo",
            CovisitationRecommender,
            grid={"window": [10, 30, 60], "recent": [10, 30]},
            description="what users touched next, from the user's latest items",
        ),
        ModelSpec(
            "relevo-content",
            "relevo",
            ContentRecommender,
            description="TF-IDF item text vs. the user's recent items",
        ),
        ModelSpec(
            DEFAULT_MODEL,
            "relevo",
            HybridRecommender,
            description="candidates from all sources ranked by LightGBM lambdarank",
        ),
    ]
}

#: Extra variants only the shared checks run (options that are not evaluated by default).
CHECK_VARIANTS: dict[str, ModelSpec] = {
    "relevo-cf-bpr": ModelSpec(
        "relevo-cf-bpr",
        "relevo",
        ALSRecommender,
        params={
            "algorithm": "bpr",
            "factors": 16,
            "iterations": 200,
            "learning_rate": 0.05,
            "regularization": 0.01,
        },
    ),
    "popularity-decayed": ModelSpec(
        "popularity-decayed",
        "baseline",
        PopularityRecommender,
        params={"half_life_days": 7.0},
        personalized=False,
    ),
}
