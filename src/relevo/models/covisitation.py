"""Co-visitation: "people who touched X next touched Y", weighted by closeness.

The cheapest model that knows about *order*. For each user's time-ordered
history, every pair of interactions at most `window` positions apart adds
``1 / distance`` to ``C[earlier, later]`` (and `backward_weight` times that to
``C[later, earlier]``). A user is scored from their `recent` last items, the
newest weighted most (`recency_decay` per step back), which is what makes it
strong on "what next" — the question a temporal split asks — and it is the
same count a streaming store keeps live (one counter per item pair).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from relevo.models.base import Recommender, State, empty_csr
from relevo.models.interactions import FloatArray, IntArray, Interactions


class CovisitationRecommender(Recommender):
    """Scores are ``r_u @ C`` for the recency-weighted last items ``r_u``."""

    kind = "covisitation"

    def __init__(
        self,
        window: int = 5,
        recent: int = 20,
        recency_decay: float = 0.9,
        backward_weight: float = 0.5,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.window = window
        self.recent = recent
        self.recency_decay = recency_decay
        self.backward_weight = backward_weight
        self.normalize = normalize
        self.covisits: sp.csr_matrix | None = None
        self.recent_items: sp.csr_matrix | None = None

    def params(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "recent": self.recent,
            "recency_decay": self.recency_decay,
            "backward_weight": self.backward_weight,
            "normalize": self.normalize,
        }

    def _fit(self, interactions: Interactions) -> None:
        order = interactions.time_order()
        users = interactions.users[order]
        items = interactions.items[order]
        keep = interactions.weights[order] > 0
        users, items = users[keep], items[keep]
        n_items = interactions.n_items
        rows: list[IntArray] = []
        cols: list[IntArray] = []
        vals: list[FloatArray] = []
        for d in range(1, self.window + 1):
            same = users[d:] == users[:-d]
            a, b = items[:-d][same], items[d:][same]
            w = np.full(len(a), 1.0 / d, dtype=np.float32)
            rows += [a, b]
            cols += [b, a]
            vals += [w, w * self.backward_weight]
        if rows:
            c = sp.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(n_items, n_items),
                dtype=np.float32,
            )
            c.sum_duplicates()
            c.setdiag(0)
            c.eliminate_zeros()
        else:
            c = empty_csr(n_items, n_items)
        if self.normalize:
            # Divide by sqrt of both items' totals: otherwise blockbusters follow everything.
            tot = np.asarray(c.sum(axis=1)).ravel() + np.asarray(c.sum(axis=0)).ravel()
            inv = np.zeros_like(tot)
            np.divide(1.0, np.sqrt(tot), out=inv, where=tot > 0)
            c = sp.csr_matrix(sp.diags(inv) @ c @ sp.diags(inv), dtype=np.float32)
        self.covisits = c
        self.recent_items = recent_item_matrix(
            interactions, self.recent, self.recency_decay, order=order
        )

    def score_users(self, users: IntArray) -> FloatArray:
        assert self.covisits is not None
        assert self.recent_items is not None
        return np.asarray((self.recent_items[users] @ self.covisits).toarray(), dtype=np.float32)

    def item_vectors(self) -> sp.csr_matrix | None:
        return self.covisits

    def _state(self) -> State:
        assert self.covisits is not None
        assert self.recent_items is not None
        return {"covisits": self.covisits, "recent_items": self.recent_items}

    def _set_state(self, state: State) -> None:
        self.covisits = sp.csr_matrix(state["covisits"])
        self.recent_items = sp.csr_matrix(state["recent_items"])


def recent_item_matrix(
    interactions: Interactions,
    recent: int,
    decay: float,
    *,
    order: IntArray | None = None,
) -> sp.csr_matrix:
    """User x item matrix of each user's last `recent` items, weight ``decay**steps_back``."""
    order = interactions.time_order() if order is None else order
    users = interactions.users[order]
    items = interactions.items[order]
    keep = interactions.weights[order] > 0
    users, items = users[keep], items[keep]
    counts = np.bincount(users, minlength=interactions.n_users)
    ends = np.cumsum(counts)
    steps_back = ends[users] - 1 - np.arange(len(users))
    near = steps_back < recent
    mat = sp.csr_matrix(
        (
            np.power(decay, steps_back[near]).astype(np.float32),
            (users[near], items[near]),
        ),
        shape=interactions.shape,
        dtype=np.float32,
    )
    mat.sum_duplicates()
    return mat
