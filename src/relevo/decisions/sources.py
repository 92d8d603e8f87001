"""Built-in candidate sources, used until trained models are registered.

- `catalog_order`: non-personalized: the catalog, categories interleaved (so a
  placement with a diversity limit still fills up); cached for a few seconds.
- `affinity_order`: personalized without a model: the items of the user's
  strongest categories (decayed affinities) first, then the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import zip_longest
from typing import Any

from relevo import catalog
from relevo.clock import Clock
from relevo.features.profile import FeatureParams, decayed, decode
from relevo.store import keys
from relevo.store.base import DocRead, Store

Scored = list[tuple[str, float, list[str]]]
CACHE_MS = 10_000


class BuiltinSources:
    def __init__(
        self, store: Store, clock: Clock, params: FeatureParams, window: int = 1000
    ) -> None:
        self.store = store
        self.clock = clock
        self.params = params
        self.window = window
        self._interleaved: tuple[int, list[str]] | None = None

    async def catalog_order(
        self, user_id: str | None, k: int, context: Mapping[str, Any]
    ) -> Scored:
        now = self.clock.now_ms()
        if self._interleaved is None or now - self._interleaved[0] > CACHE_MS:
            members = await self.store.zrange_by_score(
                keys.ITEMS_INDEX, float("-inf"), float("inf"), limit=self.window
            )
            items = await catalog.get_items(self.store, [item_id for item_id, _ in members])
            by_category: dict[str, list[str]] = {}
            for item_id, _ in members:
                category = str(items.get(item_id, {}).get("category"))
                by_category.setdefault(category, []).append(item_id)
            order = [i for round_ in zip_longest(*by_category.values()) for i in round_ if i]
            self._interleaved = (now, order)
        # Scores fall with the rank, so that rules' multiplicative boosts can reorder them.
        return [
            (item_id, 1.0 / (rank + 1), ["catalog"])
            for rank, item_id in enumerate(self._interleaved[1][:k])
        ]

    async def affinity_order(
        self, user_id: str | None, k: int, context: Mapping[str, Any]
    ) -> Scored:
        if user_id is None:
            return await self.catalog_order(None, k, context)
        (doc,) = await self.store.docs_read(
            [DocRead(keys.profile_key(user_id), keys.profile_marks_key(user_id))]
        )
        members = await self.store.zrange_by_score(
            keys.ITEMS_INDEX, float("-inf"), float("inf"), limit=self.window
        )
        if doc.value is None:
            return await self.catalog_order(None, k, context)
        state = decode(doc.value)
        now = self.clock.now_ms()
        scores = {
            category: decayed(affinity, now, self.params.affinity_half_life_ms)
            for category, affinity in state.affinities.items()
        }
        items = await catalog.get_items(self.store, [item_id for item_id, _ in members])
        ranked = sorted(
            (
                (item_id, scores.get(str(items[item_id].get("category")), 0.0))
                for item_id, _ in members
                if item_id in items
            ),
            key=lambda pair: -pair[1],
        )
        return [
            (item_id, score + 1.0 / (rank + 2), ["category affinity"])
            for rank, (item_id, score) in enumerate(ranked[:k])
        ]
