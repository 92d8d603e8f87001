"""Item-kNN: cosine similarity between item columns of the user x item matrix.

The textbook neighbourhood baseline (Sarwar et al. 2001, Deshpande & Karypis
2004): keep each item's `neighbors` most similar items, score an unseen item
by the summed similarity to the items a user touched. `shrinkage` damps
similarities supported by few common users.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from relevo.models.base import Recommender, State, empty_csr
from relevo.models.interactions import FloatArray, IntArray, Interactions


class ItemKNNRecommender(Recommender):
    """Scores are ``x_u @ S`` with `S` the pruned item-item cosine matrix."""

    kind = "item_knn"

    def __init__(self, neighbors: int = 100, shrinkage: float = 0.0) -> None:
        super().__init__()
        self.neighbors = neighbors
        self.shrinkage = shrinkage
        self.similarity: sp.csr_matrix | None = None

    def params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "shrinkage": self.shrinkage}

    def _fit(self, interactions: Interactions) -> None:
        assert self.seen is not None
        self.similarity = item_cosine(self.seen, self.neighbors, self.shrinkage)

    def score_users(self, users: IntArray) -> FloatArray:
        assert self.seen is not None
        assert self.similarity is not None
        return np.asarray((self.seen[users] @ self.similarity).toarray(), dtype=np.float32)

    def item_vectors(self) -> sp.csr_matrix | None:
        return self.similarity

    def similar_items_indices(self, item: int, k: int = 10) -> tuple[IntArray, FloatArray]:
        # The similarity row already is the answer; no second cosine needed.
        assert self.similarity is not None
        row = self.similarity[item].toarray().ravel().astype(np.float32)
        row[row == 0] = -np.inf
        row[item] = -np.inf
        from relevo.models.base import top_k

        idx, vals = top_k(row[None, :], min(k, self.n_items - 1))
        return np.where(np.isfinite(vals[0]), idx[0], -1), vals[0]

    def _state(self) -> State:
        assert self.similarity is not None
        return {"similarity": self.similarity}

    def _set_state(self, state: State) -> None:
        self.similarity = sp.csr_matrix(state["similarity"])


def item_cosine(x: sp.csr_matrix, neighbors: int, shrinkage: float = 0.0) -> sp.csr_matrix:
    """Top-`neighbors` cosine similarities per item row (zero diagonal), as CSR.

    Works on the sparse co-occurrence matrix in row blocks, so a 20k-item
    catalog never needs a dense ``n_items^2`` matrix.
    """
    xt = sp.csr_matrix(x.T, dtype=np.float32)
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)
    n = xt.shape[0]
    k = min(neighbors, n - 1)
    x_csc = sp.csr_matrix(x, dtype=np.float32)
    parts: list[sp.csr_matrix] = []
    block = 4096
    for start in range(0, n, block):
        stop = min(start + block, n)
        co = sp.csr_matrix(xt[start:stop] @ x_csc).tocoo()
        rows, cols, vals = co.row.astype(np.int64), co.col.astype(np.int64), co.data
        denom = norms[rows + start] * norms[cols] + shrinkage
        keep = (cols != rows + start) & (denom > 0)
        rows, cols, vals = rows[keep], cols[keep], vals[keep] / denom[keep]
        if k <= 0 or len(vals) == 0:
            parts.append(empty_csr(stop - start, n))
            continue
        # Sort by (row, -similarity); the first k of each row are its neighbours.
        order = np.lexsort((-vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        first = np.searchsorted(rows, rows, side="left")
        keep = (np.arange(len(rows)) - first) < k
        parts.append(
            sp.csr_matrix(
                (vals[keep], (rows[keep], cols[keep])), shape=(stop - start, n), dtype=np.float32
            )
        )
    if not parts:
        return empty_csr(n, n)
    return sp.csr_matrix(sp.vstack(parts), dtype=np.float32)
