"""EASE (Steck, 2019): a closed-form linear item-item model, a strong baseline.

``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1`` and a zero diagonal,
so an item never explains itself. It needs an ``n_items^2`` dense matrix and
one inverse, which is why relevo only uses it for catalogs up to
`MAX_ITEMS` items; beyond that the hybrid leaves it out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relevo.models.base import Recommender, State
from relevo.models.interactions import FloatArray, IntArray, Interactions

#: Above this catalog size the dense inverse costs minutes and gigabytes.
MAX_ITEMS = 12_000


class EASERecommender(Recommender):
    """Scores are ``x_u @ B`` for the user's binary history row ``x_u``."""

    kind = "ease"

    def __init__(self, regularization: float = 300.0) -> None:
        super().__init__()
        self.regularization = regularization
        self.weights: FloatArray | None = None

    def params(self) -> dict[str, Any]:
        return {"regularization": self.regularization}

    def _fit(self, interactions: Interactions) -> None:
        assert self.seen is not None
        x = self.seen
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.regularization
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self.weights = b.astype(np.float32)

    def score_users(self, users: IntArray) -> FloatArray:
        assert self.seen is not None
        assert self.weights is not None
        return np.asarray(self.seen[users] @ self.weights, dtype=np.float32)

    def item_vectors(self) -> FloatArray | None:
        # Column j of B says how each item predicts j: items that predict alike are similar.
        return None if self.weights is None else np.ascontiguousarray(self.weights.T)

    def _state(self) -> State:
        assert self.weights is not None
        return {"weights": self.weights}

    def _set_state(self, state: State) -> None:
        self.weights = np.asarray(state["weights"])
