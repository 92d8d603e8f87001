"""A registered model version, loaded for serving, and the registry's loader.

A recommender version answers two questions for serving: "what for this user"
(`for_user`, scored with the user's *live* profile features when the model is the
hybrid: `LivePairFeatures`, the same definition its ranker was trained on) and
"what is like this item" (`similar`). Users and items the model never met get
empty answers; the live models and the catalog answer for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from relevo.models.base import Recommender, empty_csr
from relevo.models.hybrid import HybridRecommender
from relevo.models.profile_features import LivePairFeatures
from relevo.models.propensity import PropensityModel


class ServingRecommender:
    def __init__(self, model: Recommender, categories: list[str | None]) -> None:
        if model.item_ids is None or model.user_ids is None:
            raise ValueError("a served model must be fitted")
        if len(categories) != model.n_items:
            categories = [None] * model.n_items
        self.model = model
        self.item_ids = model.item_ids
        self.categories = categories
        self._nothing_seen: sp.csr_matrix | None = None

    @classmethod
    def load(cls, folder: Path) -> ServingRecommender:
        model = Recommender.load(folder / "model")
        items = folder / "items.json"
        categories = json.loads(items.read_text()) if items.is_file() else []
        return cls(model, categories)

    def knows_user(self, user_id: str) -> bool:
        return self.model.user_position(user_id) >= 0

    def for_user(
        self,
        user_id: str,
        profile: Mapping[str, Any] | None,
        limit: int,
        *,
        exclude_seen: bool = True,
    ) -> list[tuple[str, float]]:
        """The model's best items for a user it knows (best first); [] for others."""
        user = self.model.user_position(user_id)
        if user < 0 or limit <= 0:
            return []
        if isinstance(self.model, HybridRecommender):
            seen = None if exclude_seen else self._empty_seen()
            features = LivePairFeatures(profile, self.item_ids, self.categories)
            cands, scores = self.model.rank_candidates(
                np.array([user], dtype=np.int64), seen=seen, pair_features=features
            )
            order = np.argsort(-scores, kind="stable")[:limit]
            return [(str(self.item_ids[cands.items[j]]), float(scores[j])) for j in order]
        idx, scores = self.model.recommend_indices([user], limit, exclude_seen=exclude_seen)
        return [
            (str(self.item_ids[i]), float(s))
            for i, s in zip(idx[0], scores[0], strict=True)
            if i >= 0
        ]

    def similar(self, item_id: str, limit: int) -> list[tuple[str, float]]:
        """Items the model finds most like `item_id` (best first); [] for an unknown item."""
        item = self.model.item_position(item_id)
        if item < 0 or limit <= 0:
            return []
        idx, sims = self.model.similar_items_indices(item, limit)
        return [
            (str(self.item_ids[i]), float(s))
            for i, s in zip(idx, sims, strict=True)
            if i >= 0 and np.isfinite(s) and s > 0
        ]

    def _empty_seen(self) -> sp.csr_matrix:
        if self._nothing_seen is None:
            self._nothing_seen = empty_csr(self.model.n_users, self.model.n_items)
        return self._nothing_seen


def load_version(name: str, version: str, folder: Path, meta: Mapping[str, Any]) -> Any:
    """The registry's loader: the object serving uses for a registered version."""
    if meta.get("kind") == PropensityModel.kind:
        return PropensityModel.load(folder / "model")
    return ServingRecommender.load(folder)
