"""`LiveModels`: the applier's hook that updates the live models, and their reader.

Updates happen in `relevo.apply.Applier` after the profile documents are
committed, for newly applied events only, so a redelivered event never counts
twice (a crash between the two leaves the live models short by one batch, as the
site-wide counters). Co-visitation needs the user's previous items in the
session: `observe` reads them from the profile state while the applier plans the
profile write, and the applier hands that note back with the applied event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from relevo.catalog_cache import CatalogCache
from relevo.clock import Clock
from relevo.features.profile import ProfileState
from relevo.live import attributes, covisitation, trending
from relevo.live.accumulator import DecayedBatch
from relevo.live.shared import SharedTops
from relevo.live.weights import event_items, event_weight
from relevo.store import keys
from relevo.store.base import DecayedGroup, DecayedRead, Store


@dataclass(frozen=True)
class LiveSignals:
    """What the live models say for one request."""

    #: Per anchor item (as asked, newest first): its co-visited items, strongest first.
    covisited: list[list[tuple[str, float]]] = field(default_factory=list)
    #: Trending items overall, strongest first (empty when not asked).
    trending: list[tuple[str, float]] = field(default_factory=list)
    #: Trending items per asked category.
    by_category: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class AttributeMatches:
    """Items sharing attributes with a query item, before scoring against their documents."""

    tokens: dict[str, float]
    candidates: list[str]
    idfs: dict[str, float]
    rare_idf: float

    def score(self, item: Mapping[str, Any]) -> float:
        """Similarity of `item` to the query item."""
        return attributes.cosine(
            self.tokens, attributes.item_tokens(item), self.idfs, self.rare_idf
        )

    def cosine(self) -> attributes.Cosine:
        """`score` of many items' tokens, the query's side computed once."""
        return attributes.Cosine(self.tokens, self.idfs, self.rare_idf)


class LiveModels:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        covisitation_half_life_ms: int,
        trending_half_life_ms: int,
        catalog: CatalogCache | None = None,
        trending_refresh_ms: int = 0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.covisitation_half_life_ms = covisitation_half_life_ms
        self.trending_half_life_ms = trending_half_life_ms
        #: Attribute postings and the item count change with the catalog only: cached with
        #: it (off by default: read from the store each time).
        self.catalog = catalog or CatalogCache(store, clock, 0)
        #: Trending as this process last read it, for up to `trending_refresh_ms` (off by
        #: default: read from the store each time).
        self.shared = SharedTops(store, trending_refresh_ms)

    # -- the applier's hook -------------------------------------------------------------
    def observe(self, state: ProfileState, record: dict[str, Any]) -> tuple[str, ...]:
        """While planning: the session's previous items, for co-visitation."""
        items = event_items(record)
        if not items or not event_weight(record["type"]):
            return ()
        return covisitation.session_predecessors(state, record, items)

    async def events_applied(self, noted: Sequence[tuple[dict[str, Any], Any]]) -> None:
        """After the profiles were committed: the events new to them, with their notes."""
        pairs = DecayedBatch(self.covisitation_half_life_ms)
        overall = DecayedBatch(self.trending_half_life_ms)
        by_category = DecayedBatch(self.trending_half_life_ms)
        for record, predecessors in noted:
            weight = event_weight(record["type"])
            items = event_items(record) if weight else []
            if items:
                trending.add_counts(overall, by_category, record, items, weight)
                covisitation.add_pairs(
                    pairs, items, predecessors or (), weight, record["timestamp"]
                )
        await self.store.decayed_add_groups(
            [
                DecayedGroup(
                    pairs.adds(),
                    self.covisitation_half_life_ms,
                    covisitation.MAX_NEIGHBOURS,
                    covisitation.TTL_MS,
                ),
                DecayedGroup(overall.adds(), self.trending_half_life_ms, trending.OVERALL_MAX),
                DecayedGroup(by_category.adds(), self.trending_half_life_ms, trending.CATEGORY_MAX),
            ]
        )
        self.shared.invalidate()  # this process's next read sees what it just added

    async def items_upserting(self, change: attributes.CatalogChange) -> None:
        """Before catalog upserts are written: add the items to the postings they join,
        take them out of those they leave."""
        postings = DecayedBatch(attributes.POSTING_HALF_LIFE_MS)
        attributes.index_items(postings, change)
        await self.store.decayed_add(
            postings.adds(), attributes.POSTING_HALF_LIFE_MS, attributes.POSTING_MAX
        )
        leaving = attributes.unindexed(change)
        if leaving:
            await self.store.decayed_remove(leaving)

    async def items_applied(self, change: attributes.CatalogChange, generation: int) -> None:
        return None

    # -- reads --------------------------------------------------------------------------
    async def read(
        self,
        *,
        anchors: Sequence[str] = (),
        categories: Sequence[str] = (),
        overall: bool = True,
        neighbours: int = 50,
        trending_limit: int = 100,
    ) -> LiveSignals:
        """Co-visited items of `anchors` and trending items, in one store round trip (two in
        the rare case a trending shard holds more of the best than its share, or when this
        process's copies of trending are due to be read again: `relevo.live.shared`)."""
        covisited = [
            DecayedRead(keys.covisitation_key(item), self.covisitation_half_life_ms, neighbours)
            for item in anchors
        ]
        reads = [
            DecayedRead(keys.trending_key(c), self.trending_half_life_ms, trending_limit)
            for c in categories
        ]
        shards = keys.trending_shard_keys() if overall else []
        share = shard_share(trending_limit, len(shards))
        reads += [DecayedRead(k, self.trending_half_life_ms, share) for k in shards]
        if not covisited and not reads:
            return LiveSignals()
        now = self.clock.now_ms()
        found, trending_found = await self.shared.read(covisited, reads, now)
        tops = trending_found[len(categories) :]
        merged = _merge_tops(tops, trending_limit)
        deeper = _incomplete(tops, share, trending_limit, merged)
        if deeper:  # a shard holds more of the best than its share: read those in full
            again = [
                DecayedRead(shards[j], self.trending_half_life_ms, trending_limit) for j in deeper
            ]
            _, in_full = await self.shared.read([], again, now)
            for j, top in zip(deeper, in_full, strict=True):
                tops[j] = top
            merged = _merge_tops(tops, trending_limit)
        return LiveSignals(
            covisited=found,
            trending=merged,
            by_category=dict(zip(categories, trending_found[: len(categories)], strict=True)),
        )

    async def category_items(self, category: str, limit: int) -> list[str]:
        """Items of a category, newest in it first (its attribute posting)."""
        token = next(iter(attributes.item_tokens({"category": category})), None)
        if token is None:  # a category with no usable token (empty, punctuation only)
            return []
        (posting,) = await self.postings([token])
        return posting[:limit]

    async def postings(self, tokens: Sequence[str]) -> list[list[str]]:
        """The items of each attribute token, newest in it first: they change with catalog
        upserts that change attributes only, so they are read once per such change."""

        async def read(missing: list[tuple[str, str]]) -> list[list[str]]:
            found = await self.store.decayed_top(
                [
                    DecayedRead(
                        keys.attribute_key(token),
                        attributes.POSTING_HALF_LIFE_MS,
                        attributes.POSTING_MAX,
                    )
                    for _, token in missing
                ],
                self.clock.now_ms(),
            )
            return [[member for member, _ in posting] for posting in found]

        return await self.catalog.derived_many([("posting", token) for token in tokens], read)

    async def item_count(self) -> int:
        """How many items the catalog holds (read again when items are added or removed)."""
        return await self.catalog.derived(("item count",), self._count_items)

    async def _count_items(self) -> int:
        return await self.store.zcard(keys.ITEMS_INDEX)

    async def attribute_matches(self, item: Mapping[str, Any], limit: int) -> AttributeMatches:
        """Items sharing attribute tokens with `item`, the `limit` most promising first."""
        tokens = attributes.item_tokens(item)
        if not tokens:
            return AttributeMatches({}, [], {}, 0.0)
        members = await self.postings(list(tokens))
        n_items = await self.item_count()
        found, idfs = attributes.candidates(tokens, members, n_items, limit + 1)
        own = str(item.get("item_id"))
        return AttributeMatches(
            tokens,
            [candidate for candidate in found if candidate != own][:limit],
            idfs,
            attributes.idf(1, max(n_items, 1)),
        )


def shard_share(limit: int, shards: int) -> int:
    """How many of each shard's best to read first for the best `limit` of all shards.

    Items spread evenly over the shards (by hash), so how many of the best `limit` one
    shard holds is about Poisson with mean ``m = limit / shards``: ``m + 3·√m + 2`` is
    exceeded in well under 1 read in 1,000 (8 shards, `limit` 170: 38, past 3.7 standard
    deviations), and `_incomplete` tells when it is, so answers never depend on it.
    Reading every shard's best `limit` instead cost most of a decision's live-model read
    (8 shards: 8 times `limit` entries parsed); twice the mean plus 10 (52), a third more
    entries than this.

    >>> shard_share(170, 8), shard_share(10, 8), shard_share(170, 1)
    (38, 7, 170)
    """
    if shards <= 1:
        return limit
    mean = limit / shards
    return min(limit, math.ceil(mean + 3 * math.sqrt(mean) + 2))


def _incomplete(
    tops: Sequence[list[tuple[str, float]]],
    share: int,
    limit: int,
    merged: Sequence[tuple[str, float]],
) -> list[int]:
    """The shards (positions) whose unread entries could still be among the best `limit`
    (`merged`: the best `limit` of what was read, `_merge_tops`).

    A shard that gave fewer than `share` entries gave them all. One that gave `share` may
    hold more, each ranked below its last; they matter only when that last one is among
    the best `limit` of what was read (or fewer than `limit` were read at all).
    """
    if share >= limit:
        return []
    full = [j for j, top in enumerate(tops) if len(top) == share]
    if not full:
        return []
    if len(merged) < limit:
        return full
    cutoff = (merged[-1][1], merged[-1][0])
    return [j for j in full if (tops[j][-1][1], tops[j][-1][0]) >= cutoff]


def _merge_tops(tops: Sequence[list[tuple[str, float]]], limit: int) -> list[tuple[str, float]]:
    """The best `limit` of several disjoint tops, by score then member (as one set would).

    Sorted by score alone first: when the best `limit` and the next one all differ in
    score (nearly always), that is the order, and the member decides nothing; otherwise
    sorted again by score then member. A key of (score, member) tuples for all ~300
    entries cost about twice the sort by score and the check together.
    """
    merged = [entry for top in tops for entry in top]
    merged.sort(key=_score, reverse=True)
    head = merged[: limit + 1]
    if len({score for _, score in head}) < len(head):  # equal scores: by member then
        merged.sort(key=_by_score_then_member, reverse=True)
    return merged[:limit]


_score, _by_score_then_member = itemgetter(1), itemgetter(1, 0)
