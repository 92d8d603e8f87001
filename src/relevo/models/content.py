"""Content-based similarity: items described alike are liked alike.

Item text (titles, categories, tags, genres) becomes TF-IDF vectors
(scikit-learn); a user's profile is the recency-weighted sum of the vectors of
their last `recent` items, and an item's score is its cosine to that profile.
It is the only source that can rank an item nobody touched yet, which is why
the hybrid keeps it even though it is weak on its own.

Without item text the model still fits and answers, with the training
popularity ranking, so a pipeline never breaks on a catalog that has no
attributes yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from relevo.models.base import Recommender, State
from relevo.models.covisitation import recent_item_matrix
from relevo.models.interactions import FloatArray, IntArray, Interactions


class ContentRecommender(Recommender):
    """TF-IDF item vectors and recency-weighted user profiles."""

    kind = "content"

    def __init__(
        self,
        recent: int = 50,
        recency_decay: float = 0.95,
        min_df: int = 1,
        ngram_max: int = 1,
    ) -> None:
        super().__init__()
        self.recent = recent
        self.recency_decay = recency_decay
        self.min_df = min_df
        self.ngram_max = ngram_max
        self.vectors: sp.csr_matrix | None = None
        self.profiles: sp.csr_matrix | None = None

    def params(self) -> dict[str, Any]:
        return {
            "recent": self.recent,
            "recency_decay": self.recency_decay,
            "min_df": self.min_df,
            "ngram_max": self.ngram_max,
        }

    @property
    def has_content(self) -> bool:
        """Whether the model learned item vectors (False: popularity fallback)."""
        return self.vectors is not None and self.vectors.nnz > 0

    def _fit(self, interactions: Interactions) -> None:
        self.vectors = item_tfidf(interactions.item_text, self.min_df, self.ngram_max)
        if self.vectors is None:
            self.profiles = None
            return
        recent = recent_item_matrix(interactions, self.recent, self.recency_decay)
        self.profiles = sp.csr_matrix(recent @ self.vectors, dtype=np.float32)

    def score_users(self, users: IntArray) -> FloatArray:
        if self.vectors is None or self.profiles is None:
            assert self.item_popularity is not None
            return np.broadcast_to(
                self.item_popularity, (len(users), len(self.item_popularity))
            ).copy()
        prof = self.profiles[users]
        norms = np.sqrt(np.asarray(prof.multiply(prof).sum(axis=1)).ravel())
        scores = np.asarray((prof @ self.vectors.T).toarray(), dtype=np.float32)
        # Item vectors are already L2-normalised, so dividing by the profile norm gives cosine.
        np.divide(scores, norms[:, None], out=scores, where=norms[:, None] > 0)
        return scores

    def item_vectors(self) -> sp.csr_matrix | None:
        return self.vectors if self.has_content else None

    def _state(self) -> State:
        if self.vectors is None or self.profiles is None:
            return {}
        return {"vectors": self.vectors, "profiles": self.profiles}

    def _set_state(self, state: State) -> None:
        if "vectors" in state:
            self.vectors = sp.csr_matrix(state["vectors"])
            self.profiles = sp.csr_matrix(state["profiles"])


def item_tfidf(
    texts: tuple[str, ...] | None, min_df: int = 1, ngram_max: int = 1
) -> sp.csr_matrix | None:
    """L2-normalised TF-IDF rows per item, or None when there is no usable text."""
    if texts is None or not any(t.strip() for t in texts):
        return None
    vectorizer = TfidfVectorizer(
        min_df=min_df,
        ngram_range=(1, ngram_max),
        sublinear_tf=True,
        token_pattern=r"(?u)\b\w+\b",
    )
    try:
        mat = vectorizer.fit_transform(list(texts))
    except ValueError:  # every document was empty after tokenising
        return None
    return sp.csr_matrix(mat, dtype=np.float32)
