"""Where a decision's candidate items come from.

- `personalized`: the recommendations service (`relevo.serving`): the promoted model
  blended with live co-visitation, trending and attribute neighbours, for this user.
- `popular`: non-personalized: live trending items, filled up with the catalog with
  its categories interleaved (so a placement with a diversity limit still fills up).

Scores fall with the rank where a source has none, so that rules' multiplicative
boosts can reorder candidates.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import zip_longest
from typing import Any

from relevo import catalog
from relevo.clock import Clock
from relevo.live.models import LiveModels
from relevo.serving.recommend import RecommendationService
from relevo.store import keys
from relevo.store.base import Store

Scored = list[tuple[str, float, list[str]]]
CACHE_MS = 10_000
CATALOG_WINDOW = 1_000


class CandidateSources:
    def __init__(
        self, store: Store, clock: Clock, live: LiveModels, serving: RecommendationService
    ) -> None:
        self.store = store
        self.clock = clock
        self.live = live
        self.serving = serving
        self._interleaved: tuple[int, list[str]] | None = None

    async def personalized(self, user_id: str | None, k: int, context: Mapping[str, Any]) -> Scored:
        if user_id is None:
            return await self.popular(None, k, context)
        found = await self.serving.recommend_entries(
            user_id, k, context=context, exclude_seen=False
        )
        # Items share a few tuples of reasons (a blend's combinations): each one's names are
        # listed once, and the lists are shared (decisions only read them).
        names: dict[int, list[str]] = {}
        scored: Scored = []
        for item_id, score, reasons in found:
            listed = names.get(id(reasons))
            if listed is None:
                listed = names[id(reasons)] = [reason.source for reason in reasons]
            scored.append((item_id, score, listed))
        return scored

    async def popular(self, user_id: str | None, k: int, context: Mapping[str, Any]) -> Scored:
        signals = await self.live.read(overall=True, trending_limit=k)
        scored = [(item_id, score, ["trending"]) for item_id, score in signals.trending]
        if len(scored) < k:
            seen = {item_id for item_id, _, _ in scored}
            fill = [i for i in await self._catalog_order() if i not in seen][: k - len(scored)]
            low = min((score for _, score, _ in scored), default=1.0)
            scored += [(i, low / (rank + 2), ["catalog"]) for rank, i in enumerate(fill)]
        return scored

    async def _catalog_order(self) -> list[str]:
        now = self.clock.now_ms()
        if self._interleaved is None or now - self._interleaved[0] > CACHE_MS:
            members = await self.store.zrange_by_score(
                keys.ITEMS_INDEX, float("-inf"), float("inf"), limit=CATALOG_WINDOW
            )
            items = await catalog.get_items(self.store, [item_id for item_id, _ in members])
            by_category: dict[str, list[str]] = {}
            for item_id, _ in members:
                category = str(items.get(item_id, {}).get("category"))
                by_category.setdefault(category, []).append(item_id)
            order = [i for round_ in zip_longest(*by_category.values()) for i in round_ if i]
            self._interleaved = (now, order)
        return self._interleaved[1]
