"""Most-popular items: the floor every recommender must beat, and the fallback.

Optionally time-decayed (`half_life_days`), because "popular" in a shop means
popular *lately*; with no half-life it is the classic all-time count baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relevo.models.base import Recommender, State
from relevo.models.interactions import FloatArray, IntArray, Interactions

DAY_MS = 86_400_000


class PopularityRecommender(Recommender):
    """Scores every item by how many users touched it (decayed when asked).

    >>> data = Interactions.from_records([
    ...     {"user_id": u, "item_id": i, "timestamp": 0}
    ...     for u, i in [("a", "x"), ("b", "x"), ("b", "y"), ("c", "z")]
    ... ])
    >>> ids, _ = PopularityRecommender().fit(data).recommend(["c"], k=2)
    >>> ids.tolist()
    [['x', 'y']]
    """

    kind = "popularity"

    def __init__(self, half_life_days: float | None = None) -> None:
        super().__init__()
        self.half_life_days = half_life_days
        self.scores: FloatArray | None = None

    def params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life_days}

    def _fit(self, interactions: Interactions) -> None:
        if self.half_life_days is None or len(interactions) == 0:
            assert self.item_popularity is not None
            self.scores = self.item_popularity.copy()
            return
        age_days = (interactions.timestamps.max() - interactions.timestamps) / DAY_MS
        decay = np.exp2(-age_days / self.half_life_days)
        self.scores = np.bincount(
            interactions.items, weights=decay, minlength=interactions.n_items
        ).astype(np.float32)

    def score_users(self, users: IntArray) -> FloatArray:
        assert self.scores is not None
        return np.broadcast_to(self.scores, (len(users), len(self.scores))).copy()

    def shared_scores(self) -> FloatArray | None:
        return self.scores

    def _state(self) -> State:
        assert self.scores is not None
        return {"scores": self.scores}

    def _set_state(self, state: State) -> None:
        self.scores = np.asarray(state["scores"])
