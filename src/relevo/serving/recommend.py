"""The serving pipeline behind `Engine.recommend`, `similar_items` and `score_variants`.

A recommendation blends (`blend.Blend`, weights in `WEIGHTS`):

* **live co-visitation** of the user's newest items (and of the page's item), so a
  click made a moment ago changes the next answer; the newest anchor leads;
* the **promoted trained model**: its ranking for a user it knows (the hybrid
  scores its candidates with the user's live profile features), and its
  neighbours of the user's newest item (which also serves users it never met);
* **attribute neighbours** of a newest item nobody co-visited yet (a new item);
* **trending** items in the categories of the request (`category`, the context's
  category or the page item's category), in the user's favourite categories, and
  overall; then the newest catalog items (of the asked category), so an answer is
  never empty while the catalog has items in stock.

Then the business rules: items out of stock never appear (with a catalog, items
absent from it neither); `category` keeps that category only; `exclude_seen`
drops the user's recent items and cart (and what the model saw them touch); the
page's own item is never recommended. `fallback` says the trained model
contributed nothing (no promoted version, an unknown user and item, or a failure
of the model, which is logged and never turns into an error).

Store round trips: the profile (none in a decision, which read it already), the live
models (one batched read). The catalog documents of the candidates, the attribute
postings and an item's attribute neighbours come from the process's catalog cache
(`relevo.catalog_cache`: read once per catalog change). A repeated request of a user
who did nothing new reuses the ranking (`cache.AnswerCache`) and reads only the
profile (and the catalog, from the cache).
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from relevo.catalog_cache import CatalogCache
from relevo.clock import Clock
from relevo.errors import InvalidInput, NotFound, Unavailable
from relevo.features.profile import FeatureParams, ProfileState, decayed, decode, render
from relevo.live import attributes
from relevo.live.models import LiveModels, LiveSignals
from relevo.models.propensity import OUTCOMES, PropensityModel
from relevo.models.registry import ModelRegistry, Served
from relevo.models.training import PROPENSITY
from relevo.serving.blend import Blend, Entry, Ranking
from relevo.serving.cache import AnswerCache
from relevo.serving.results import Reason, Recommendations, Recommended, ScoredVariants
from relevo.serving.served_model import ServingRecommender
from relevo.store import keys
from relevo.store.base import DocRead, Store

log = logging.getLogger(__name__)

WEIGHTS: dict[str, float] = {
    "covisitation": 1.2,
    "model": 1.0,
    "model_similar": 0.6,
    "attributes": 0.5,
    "trending_context": 0.6,
    "trending_affinity": 0.3,
    "trending": 0.2,
    "catalog": 0.05,
}
ANCHORS = 3
"""The user's newest items whose co-visited items are candidates."""
ANCHOR_DECAY = 0.7
"""Each older anchor weighs this much less than the one after it."""
AFFINITY_CATEGORIES = 2
LIVE = "live"
MODEL_SOURCES = frozenset({"model", "model_similar"})
_second = itemgetter(1)


@dataclass(slots=True)  # not frozen: eleven fields set through object.__setattr__ each
class _Request:
    """One recommendation request, with what the profile says about it (read-only)."""

    user_id: str
    state: ProfileState | None
    #: The profile document's version: -1 when it could not be read (never cached).
    profile_version: int
    pool: int
    #: Items whose co-visited items are candidates: the page's item, then the newest.
    anchors: list[str]
    page_doc: dict[str, Any] | None
    #: Categories the request is about (`category`, the context's, the page item's).
    asked: list[str]
    #: The user's favourite categories (decayed affinities) not asked already.
    favourite: list[str]
    exclude_seen: bool
    exclude: set[str]


CACHED_ITEMS = 100_000
"""The answer cache's budget, in ranked items (at most ~250 bytes each with their
scores and reasons: ~25 MB). A count of answers is no bound: one answer of a decision
over the demo catalog holds over 200 items, so 10,000 of them would be hundreds of MB;
and in a soak the answers cached grow with the share of users who have a profile
(`bench.memory`)."""

PROFILE_READ: ContextVar[tuple[str, int, ProfileState | None] | None] = ContextVar(
    "relevo_profile_read", default=None
)
"""(user id, document version, state) of the profile the current task already read: a
decision sets it (in its own task) so that its recommendations reuse that read instead
of reading and decoding the same document again a moment later."""


def pool_size(k: int) -> int:
    """Candidates read per source: enough to survive filters."""
    return 3 * k + 20


Neighbours = tuple[tuple[str, ...], tuple[str, ...], "array[float]"]
"""An anchor's attribute neighbours: the candidates, then the ids and scores of those
with a positive score, best first (`RecommendationService._attribute_neighbours`)."""


class RecommendationService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        live: LiveModels,
        registry: ModelRegistry,
        params: FeatureParams,
        model_name: str,
        cache_ttl_ms: int = 0,
        catalog: CatalogCache | None = None,
    ) -> None:
        self.cache: AnswerCache[Ranking] = AnswerCache(
            cache_ttl_ms, max_weight=CACHED_ITEMS, weigh=len
        )
        self.store = store
        self.clock = clock
        self.live = live
        self.registry = registry
        self.params = params
        self.model_name = model_name
        #: The item documents (off: read from the store each time).
        self.catalog = catalog or CatalogCache(store, clock, 0)

    # -- recommendations ----------------------------------------------------------------
    async def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        context: Mapping[str, Any] | None = None,
        category: str | None = None,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
    ) -> Recommendations:
        """Up to `k` items for `user_id` now (see the module docstring for how)."""
        entries, version = await self._recommend(
            user_id, k, context, category, exclude_seen, candidates
        )
        return self._answer(entries, version, user_id=user_id)

    def _answer(
        self, entries: list[Entry], version: str | None, *, user_id: str | None,
        item_id: str | None = None,
    ) -> Recommendations:  # fmt: skip
        """The public answer of `entries`: fallback when no model source gave an item."""
        items = [Recommended(*entry) for entry in entries]
        return Recommendations(
            user_id=user_id,
            item_id=item_id,
            items=items,
            model_name=self.model_name,
            model_version=version,
            fallback=MODEL_SOURCES.isdisjoint([r.source for item in items for r in item.reasons]),
        )

    async def recommend_entries(
        self, user_id: str, k: int, *, context: Mapping[str, Any] | None, exclude_seen: bool
    ) -> list[Entry]:
        """`recommend`'s items as (item id, score, reasons) tuples, for a decision: the
        same items in the same order, without a `Recommended` built per item (a frozen
        dataclass, three ``object.__setattr__`` calls each, for the 50 candidates a
        decision reads)."""
        return (await self._recommend(user_id, k, context, None, exclude_seen, None))[0]

    async def _recommend(
        self,
        user_id: str,
        k: int,
        context: Mapping[str, Any] | None,
        category: str | None,
        exclude_seen: bool,
        candidates: Sequence[str] | None,
    ) -> tuple[list[Entry], str | None]:
        """The entries of `recommend`, and the model version behind them."""
        served = self.registry.served(self.model_name)  # one version for the whole request
        model = served.model if served and isinstance(served.model, ServingRecommender) else None
        version = served.version if served else None
        context = dict(context or {})
        request = await self._situation(user_id, k, context, category, exclude_seen)
        key = (
            user_id,
            request.profile_version,
            version,
            k,
            category,
            exclude_seen,
            orjson.dumps(context, option=orjson.OPT_SORT_KEYS),
            None if candidates is None else tuple(candidates),
        )
        now = self.clock.now_ms()
        cached = self.cache.get(key, now) if request.profile_version >= 0 else None
        ranked: Iterable[Entry]
        if cached is None:
            blend, docs = await self._blend(request, model, version)
            ranked = blend.ranking()
            if request.profile_version >= 0:
                self.cache.put(key, ranked, now)
        else:  # the ranking is cached, the catalog (stock) is read again
            ranked = cached
            docs = await self.catalog.documents(cached.top(2 * request.pool))
        return await self._finish(ranked, docs, k, category, candidates, request.exclude), version

    async def _blend(
        self, request: _Request, model: ServingRecommender | None, version: str | None
    ) -> tuple[Blend, Mapping[str, dict[str, Any]]]:
        """Every source's candidates, blended; and the catalog documents read on the way."""
        signals = await self.live.read(
            anchors=request.anchors,
            categories=request.asked + request.favourite,
            neighbours=request.pool,
            trending_limit=request.pool,
        )
        blend = Blend()
        for j, neighbours in enumerate(signals.covisited):
            weight = WEIGHTS["covisitation"] * ANCHOR_DECAY**j
            reason = Reason("covisitation", LIVE)
            blend.add(neighbours, weight, reason, exclude=request.exclude, by_score=True)
        if model is not None:
            self._add_model(blend, model, version, request)
        self._add_trending(blend, signals, request)
        new_anchor = request.anchors[0] if request.anchors and not signals.covisited[0] else None
        docs = await self._with_attributes(
            blend, new_anchor, request.page_doc, request.pool, request.exclude
        )
        return blend, docs

    async def _situation(
        self,
        user_id: str,
        k: int,
        context: dict[str, Any],
        category: str | None,
        exclude_seen: bool,
    ) -> _Request:
        """What the request and the user's profile say, before any model runs."""
        version, state = await self._state(user_id)
        recent = [entry.item_id for entry in state.recent_items] if state else []
        page_item = _text(context.get("item_id"))
        page_doc = None
        if page_item is not None:
            page_doc = (await self.catalog.items([page_item])).get(page_item)
        page_category = None if page_doc is None else page_doc.get("category")
        asked = _unique([category, _text(context.get("category")), page_category])
        exclude = set(recent) | set(state.cart) if state and exclude_seen else set()
        if page_item is not None:
            exclude.add(page_item)
        return _Request(
            user_id=user_id,
            state=state,
            profile_version=version,
            pool=pool_size(k),
            anchors=_unique([page_item, *recent[:ANCHORS]]),
            page_doc=page_doc,
            asked=asked,
            favourite=[c for c in self._favourite_categories(state) if c not in asked],
            exclude_seen=exclude_seen,
            exclude=exclude,
        )

    def _add_model(
        self, blend: Blend, model: ServingRecommender, version: str | None, request: _Request
    ) -> None:
        try:
            state = request.state
            profile = render(state, self.clock.now_ms(), self.params) if state else None
            ranked = model.for_user(
                request.user_id, profile, request.pool, exclude_seen=request.exclude_seen
            )
            blend.add(ranked, WEIGHTS["model"], Reason("model", version), exclude=request.exclude)
            if request.anchors:
                blend.add(
                    model.similar(request.anchors[0], request.pool),
                    WEIGHTS["model_similar"],
                    Reason("model_similar", version),
                    exclude=request.exclude,
                )
        except Exception:  # always answer: the live signals still do
            log.exception(
                "model %s %s failed for user %s", self.model_name, version, request.user_id
            )

    @staticmethod
    def _add_trending(blend: Blend, signals: LiveSignals, request: _Request) -> None:
        exclude = request.exclude
        by_category = Reason("trending_category", LIVE)
        for names, weight in (
            (request.asked, WEIGHTS["trending_context"]),
            (request.favourite, WEIGHTS["trending_affinity"]),
        ):
            for name in names:
                ranked = signals.by_category[name]
                blend.add(ranked, weight, by_category, exclude=exclude, by_score=True)
        overall = Reason("trending", LIVE)
        blend.add(signals.trending, WEIGHTS["trending"], overall, exclude=exclude, by_score=True)

    async def _with_attributes(
        self,
        blend: Blend,
        item_id: str | None,
        known: Mapping[str, Any] | None,
        pool: int,
        exclude: set[str],
    ) -> Mapping[str, dict[str, Any]]:
        """Add attribute neighbours of `item_id` (if any); the catalog documents read."""
        doc = known if known is not None and known.get("item_id") == item_id else None
        if item_id is not None and doc is None:
            doc = (await self.catalog.items([item_id])).get(item_id)
        wanted = blend.best(2 * pool)
        if doc is None:
            return await self.catalog.documents(wanted)
        candidates, ids, scores = await self._attribute_neighbours(doc, pool)
        wanted.update(candidates)
        docs = await self.catalog.documents(wanted)
        blend.add(
            zip(ids, scores, strict=True),
            WEIGHTS["attributes"],
            Reason("attributes", LIVE),
            exclude=exclude,
            by_score=True,
        )
        return docs

    async def _attribute_neighbours(self, doc: Mapping[str, Any], pool: int) -> Neighbours:
        """Items sharing attributes with the catalog item `doc`, then the ids and scores of
        those of them with a positive score, best first: from items' attributes alone, so
        computed once per change of them (`CatalogCache.derived`), not per stock update.

        Kept flat (the ids a tuple, the scores an array of doubles), not as a list of
        (id, score) pairs: a process caches this for every item it meets as an anchor
        (thousands), and each pair would be an object the garbage collector walks while
        it is young. ~170 pairs per item made the young generation ~100,000 such tuples
        each time it was collected, a pause of 25-40 ms that reached the slowest 1% of
        decisions (`bench.load`'s p99). A tuple of strings is one object, which the
        collector stops tracking; an array is none it tracks, and a third of the bytes."""

        async def compute() -> Neighbours:
            matches = await self.live.attribute_matches(doc, pool)
            docs = await self.catalog.items(matches.candidates)
            tokens, of_item = attributes.item_tokens, self.catalog.of_item
            similarity = matches.cosine()
            scored = [
                (c, similarity(of_item(c, docs[c], tokens)))
                for c in matches.candidates
                if c in docs
            ]
            # best first, ties by id: by id, then (stable) by score, without a key function
            positive = sorted(p for p in scored if p[1] > 0)
            positive.sort(key=_second, reverse=True)
            ids = tuple([item for item, _ in positive])
            return tuple(matches.candidates), ids, array("d", [score for _, score in positive])

        key = ("attributes", str(doc.get("item_id")), pool)
        return await self.catalog.derived(key, compute)

    async def _finish(
        self,
        ranked: Iterable[Entry],
        docs: Mapping[str, dict[str, Any]],
        k: int,
        category: str | None,
        candidates: Sequence[str] | None,
        exclude: set[str],
    ) -> list[Entry]:
        """Business rules, then the best `k` of `ranked` (best first); the newest catalog
        items fill a short list."""
        if candidates is not None:
            allowed = set(candidates)
            kept = [entry for entry in ranked if entry[0] in allowed]
            listed = {item for item, _, _ in kept}
            kept += [(c, 0.0, ()) for c in dict.fromkeys(candidates) if c not in listed]
            ranked = kept
            docs = {
                **docs,
                **await self.catalog.items([c for c in allowed - docs.keys()]),
            }
        keep_unknown: bool | None = None  # known when an item has no document (rare)
        items: list[Entry] = []
        for entry in ranked:
            item = entry[0]  # `_acceptable` inlined: it runs per candidate
            doc = docs.get(item)
            if doc is None:
                if keep_unknown is None:
                    keep_unknown = not docs and category is None and await self._catalog_is_empty()
                if not keep_unknown or item in exclude:
                    continue
            elif (
                doc.get("in_stock") is False
                or (category is not None and doc.get("category") != category)
                or item in exclude
            ):
                continue
            items.append(entry)
            if len(items) == k:
                return items
        if candidates is None:
            await self._fill_from_catalog(items, k, category, exclude)
        return items

    async def _fill_from_catalog(
        self, items: list[Entry], k: int, category: str | None, exclude: set[str]
    ) -> None:
        if len(items) >= k:
            return
        window = pool_size(k) * 4
        if category is not None:
            ids = await self.live.category_items(category, window)
        else:
            ids = await self.catalog.derived(("newest", window), lambda: self._newest(window))
        docs = await self.catalog.items(ids)
        taken = {item[0] for item in items} | exclude
        reason = (Reason("catalog", None),)
        for rank, item in enumerate(ids):
            if item not in taken and _acceptable(docs.get(item), category, False):
                items.append((item, WEIGHTS["catalog"] / (1 + rank), reason))
                if len(items) == k:
                    return

    async def _newest(self, count: int) -> list[str]:
        """The `count` most recently listed items (by ``created_at``), newest first."""
        total = await self.live.item_count()
        newest = await self.store.zrange_by_score(
            keys.ITEMS_INDEX, float("-inf"), float("inf"), offset=max(0, total - count)
        )
        return [item for item, _ in reversed(newest)]

    # -- similar items ------------------------------------------------------------------
    async def similar_items(self, item_id: str, k: int = 10) -> Recommendations:
        """Up to `k` items like `item_id`: trained neighbours, co-visitation, attributes."""
        served = self.registry.served(self.model_name)
        model = served.model if served and isinstance(served.model, ServingRecommender) else None
        version = served.version if served else None
        pool = pool_size(k)
        doc = (await self.catalog.items([item_id])).get(item_id)
        item_category = (doc or {}).get("category")
        signals = await self.live.read(
            anchors=[item_id],
            categories=[item_category] if item_category else [],
            overall=False,
            neighbours=pool,
            trending_limit=pool,
        )
        exclude = {item_id}
        blend = Blend()
        blend.add(
            signals.covisited[0], 1.0, Reason("covisitation", LIVE), exclude=exclude, by_score=True
        )
        known = False
        if model is not None:
            try:
                neighbours = model.similar(item_id, pool)
                known = model.model.item_position(item_id) >= 0
                blend.add(neighbours, 1.0, Reason("model_similar", version), exclude=exclude)
            except Exception:
                log.exception("model %s %s failed on item %s", self.model_name, version, item_id)
        if doc is None and not known and not signals.covisited[0]:
            raise NotFound(f"no item {item_id!r}", field="item_id")
        for ranked in signals.by_category.values():
            blend.add(
                ranked, WEIGHTS["trending"], Reason("trending_category", LIVE), exclude=exclude
            )
        docs = await self._with_attributes(blend, item_id, doc, pool, exclude)
        entries = await self._finish(blend.ranking(), docs, k, None, None, exclude)
        return self._answer(entries, version, user_id=None, item_id=item_id)

    # -- propensity ---------------------------------------------------------------------
    async def score_variants(
        self,
        user_id: str | None,
        candidates: Sequence[Mapping[str, Any]],
        *,
        context: Mapping[str, Any] | None = None,
        target: str = "click",
    ) -> ScoredVariants:
        """Calibrated P(`target`) per candidate for this user and context.

        A candidate is an item (``{"item_id"}``, its category and price read from the
        catalog) or a content variant (``{"variant_id", "category"?, "price"?}``).
        Without a promoted propensity model every score is None and `fallback` true.
        """
        if target not in OUTCOMES:
            raise InvalidInput(
                f"unknown target {target!r}; use one of {', '.join(OUTCOMES)}", field="target"
            )
        described = await self._describe(candidates)
        ids = [str(c["id"]) for c in described]
        served: Served | None = self.registry.served(PROPENSITY)
        model = served.model if served and isinstance(served.model, PropensityModel) else None
        if model is None or target not in model.targets:
            return ScoredVariants(target, [(i, None) for i in ids], None, True)
        state = (await self._state(user_id))[1] if user_id else None
        now = self.clock.now_ms()
        profile = render(state, now, self.params) if state else None
        scores = model.score(profile, described, dict(context or {}), now, target)
        assert served is not None
        return ScoredVariants(
            target, list(zip(ids, scores.tolist(), strict=True)), served.version, False
        )

    async def _describe(self, candidates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        items = [str(c["item_id"]) for c in candidates if c.get("item_id") is not None]
        docs = await self.catalog.items(items) if items else {}
        described = []
        for index, candidate in enumerate(candidates):
            if candidate.get("item_id") is not None:
                doc = docs.get(str(candidate["item_id"]), {})
                described.append(
                    {
                        "id": str(candidate["item_id"]),
                        "kind": "item",
                        "category": candidate.get("category", doc.get("category")),
                        "price": candidate.get("price", doc.get("price")),
                    }
                )
            elif candidate.get("variant_id") is not None:
                described.append(
                    {
                        "id": str(candidate["variant_id"]),
                        "kind": "variant",
                        "category": candidate.get("category"),
                        "price": candidate.get("price"),
                    }
                )
            else:
                raise InvalidInput(
                    "a candidate needs an item_id or a variant_id", field=f"candidates[{index}]"
                )
        return described

    # -- reads --------------------------------------------------------------------------
    async def _state(self, user_id: str) -> tuple[int, ProfileState | None]:
        """The user's profile and its document version (changed by every applied event)."""
        known = PROFILE_READ.get()
        if known is not None and known[0] == user_id:
            return known[1], known[2]
        try:
            (doc,) = await self.store.docs_read(
                [DocRead(keys.profile_key(user_id), keys.profile_marks_key(user_id))]
            )
        except Unavailable:
            log.warning("profile of %s unavailable; answering without it", user_id)
            return -1, None
        return doc.version, None if doc.value is None else decode(
            doc.value, self.store.dictionaries
        )

    def _favourite_categories(self, state: ProfileState | None) -> list[str]:
        if state is None or not state.affinities:
            return []
        now, half_life = self.clock.now_ms(), self.params.affinity_half_life_ms
        ranked = sorted(
            state.affinities, key=lambda c: -decayed(state.affinities[c], now, half_life)
        )
        return ranked[:AFFINITY_CATEGORIES]

    async def _catalog_is_empty(self) -> bool:
        return await self.live.item_count() == 0


def _acceptable(doc: Mapping[str, Any] | None, category: str | None, keep_unknown: bool) -> bool:
    if doc is None:
        return keep_unknown
    if doc.get("in_stock") is False:
        return False
    return category is None or doc.get("category") == category


def _unique(values: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
