"""Matrix-factorisation collaborative filtering on top of `implicit`.

ALS (Hu, Koren & Volinsky 2008) is the default: it is fast on CPU, handles
confidence weights (a purchase counts more than a view) and has few knobs. BPR
is available as an option for pairwise ranking. `implicit` is only used to
learn the factors; scoring is a plain ``U @ V.T`` so a saved model needs
nothing but two numpy arrays.

Threads: `implicit` parallelises with its own threads and warns when OpenBLAS
also runs a thread pool (the two fight and training gets up to 10x slower). We
limit BLAS to one thread around construction and training with `threadpoolctl`
instead of asking every user to export ``OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

# Imported eagerly, not inside `_fit`: importing them loads scipy's own OpenBLAS, and a
# library loaded inside `threadpool_limits` would escape the limit (and trigger the warning).
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import bm25_weight
from threadpoolctl import threadpool_limits

from relevo.models.base import Recommender, State
from relevo.models.interactions import FloatArray, IntArray, Interactions

Algorithm = Literal["als", "bpr"]
Weighting = Literal["binary", "events", "bm25"]


class ALSRecommender(Recommender):
    """Latent-factor CF; `weighting` turns interactions into ALS confidences.

    * ``binary``: 1 per touched item (the plain `implicit` baseline);
    * ``events``: summed event-type weights (purchase > cart > click > view);
    * ``bm25``: event weights, then BM25 to damp heavy users and blockbusters.

    The default `regularization` (1.0) suits ALS, where it keeps factors from
    memorising small catalogs; BPR's SGD wants about 0.01.
    """

    kind = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 1.0,
        alpha: float = 1.0,
        iterations: int = 15,
        algorithm: Algorithm = "als",
        weighting: Weighting = "binary",
        learning_rate: float = 0.01,
        random_state: int = 42,
        num_threads: int = 0,
    ) -> None:
        super().__init__()
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.algorithm: Algorithm = algorithm
        self.weighting: Weighting = weighting
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.num_threads = num_threads
        self.user_factors: FloatArray | None = None
        self.item_factors: FloatArray | None = None

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "algorithm": self.algorithm,
            "weighting": self.weighting,
            "learning_rate": self.learning_rate,
            "random_state": self.random_state,
            "num_threads": self.num_threads,
        }

    def confidence(self, interactions: Interactions) -> sp.csr_matrix:
        """The user x item matrix the factorisation is trained on."""
        if self.weighting == "binary":
            return interactions.to_csr(binary=True)
        mat = interactions.to_csr()
        if self.weighting == "bm25":
            mat = sp.csr_matrix(bm25_weight(mat, K1=100, B=0.8), dtype=np.float32)
        return mat

    def _fit(self, interactions: Interactions) -> None:
        conf = self.confidence(interactions)
        with threadpool_limits(1, "blas"):
            model: Any
            if self.algorithm == "bpr":
                model = BayesianPersonalizedRanking(
                    factors=self.factors,
                    learning_rate=self.learning_rate,
                    regularization=self.regularization,
                    iterations=self.iterations,
                    num_threads=self.num_threads,
                    random_state=self.random_state,
                )
            else:
                model = AlternatingLeastSquares(
                    factors=self.factors,
                    regularization=self.regularization,
                    alpha=self.alpha,
                    iterations=self.iterations,
                    num_threads=self.num_threads,
                    random_state=self.random_state,
                )
            model.fit(conf, show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def score_users(self, users: IntArray) -> FloatArray:
        assert self.user_factors is not None
        assert self.item_factors is not None
        return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float32)

    def item_vectors(self) -> FloatArray | None:
        return self.item_factors

    def _state(self) -> State:
        assert self.user_factors is not None
        assert self.item_factors is not None
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _set_state(self, state: State) -> None:
        self.user_factors = np.asarray(state["user_factors"])
        self.item_factors = np.asarray(state["item_factors"])
