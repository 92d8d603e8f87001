"""`SharedTops`: a process's copy of the decayed sets that every request reads alike.

Trending overall (eight shards) and trending by category are the same sets for every
user: a decision read some 300-500 of their members from the store, and that read was
most of Redis's work per decision (``ZREVRANGE``: ~140 µs of the ~265 µs of Redis CPU a
decision cost in `bench.load`'s traffic) and a sixth of the API process's instructions
(parsing the replies, decoding the members). Here a process keeps each set's top *as
stored* (`relevo.store.base.StoredTop`) and decays it to each request's time, which
gives the numbers a fresh read gives while the set has not changed.

How fresh: a copy is read again once it is `max_age_ms` old on the engine's clock
(``RELEVO_TRENDING_REFRESH``, 1 s by default), so events applied by other processes
(workers, other API processes) reach this process's trending within that long. Events
this process applies itself (inline mode, the embedded store) drop every copy at once
(`invalidate`, called by `LiveModels.events_applied` after its write), so a process
that applies what it serves answers exactly as if it read the store each time. With
``max_age_ms`` 0 nothing is kept.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from relevo.store.base import DecayedRead, Store, StoredTop

MAX_KEPT = 4_096
"""Copies kept at most (one per set and depth read): a site with more categories than
this starts over rather than growing without bound."""

Top = list[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class _Copy:
    """A `StoredTop` as kept: its members' ids and scores side by side, 16 bytes a member
    (a pointer and a double) where its list of pairs costs 89 (a tuple and a float object
    each; tracemalloc, 1,000 members). `MAX_KEPT` copies of 1,000 members (a whole
    trending shard) then hold ~65 MB at most instead of ~360, and the cyclic collector has
    no tuples of theirs to walk."""

    ids: tuple[str, ...]
    scores: array[float]
    landmark_ms: int | None
    read_at_ms: int

    @classmethod
    def of(cls, top: StoredTop, read_at_ms: int) -> _Copy:
        ids = tuple([member for member, _ in top.members])
        return cls(
            ids, array("d", [score for _, score in top.members]), top.landmark_ms, read_at_ms
        )

    def decayed(self, now_ms: int, half_life_ms: int) -> Top:
        """`StoredTop.decayed`: the same products of the same doubles."""
        if self.landmark_ms is None:
            return []
        factor = 2.0 ** (-(now_ms - self.landmark_ms) / half_life_ms)
        return list(zip(self.ids, [score * factor for score in self.scores], strict=True))


class SharedTops:
    def __init__(self, store: Store, max_age_ms: int) -> None:
        self.store = store
        self.max_age_ms = max_age_ms
        #: (key, limit) -> the top as stored, and the engine time it was read
        self._kept: dict[tuple[str, int], _Copy] = {}
        #: Moves on each `invalidate`: a read that began before one is not kept.
        self._generation = 0

    def invalidate(self) -> None:
        """Forget every copy: this process has just changed the sets."""
        self._generation += 1
        self._kept.clear()

    async def read(
        self, fresh: Sequence[DecayedRead], shared: Sequence[DecayedRead], now_ms: int
    ) -> tuple[list[Top], list[Top]]:
        """`Store.decayed_top` of `fresh` (read from the store) and of `shared` (from the
        copies when young enough), in one round trip when every copy is."""
        if self.max_age_ms <= 0:
            reads = [*fresh, *shared]
            found = await self.store.decayed_top(reads, now_ms) if reads else []
            return found[: len(fresh)], found[len(fresh) :]
        young = self._young(shared, now_ms)
        missing = [read for read, top in zip(shared, young, strict=True) if top is None]
        fetched = iter(await self._fetch(missing, now_ms) if missing else ())
        tops: list[_Copy | StoredTop] = [top if top is not None else next(fetched) for top in young]
        fresh_tops = await self.store.decayed_top(fresh, now_ms) if fresh else []
        return fresh_tops, [
            top.decayed(now_ms, read.half_life_ms) for top, read in zip(tops, shared, strict=True)
        ]

    async def _fetch(self, reads: Sequence[DecayedRead], now_ms: int) -> list[StoredTop]:
        """Read `reads` as stored, and keep them unless `invalidate` ran meanwhile (the
        read may then predate the change)."""
        generation = self._generation
        tops = await self.store.decayed_top_stored(reads)
        if generation == self._generation:
            if len(self._kept) + len(reads) > MAX_KEPT:
                self._kept.clear()
            for read, top in zip(reads, tops, strict=True):
                self._kept[(read.key, read.limit)] = _Copy.of(top, now_ms)
        return tops

    def _young(self, reads: Sequence[DecayedRead], now_ms: int) -> list[_Copy | None]:
        """The kept copy of each read, or None when there is none younger than the limit
        (a clock set back makes every copy old)."""
        kept, max_age = self._kept, self.max_age_ms
        found: list[_Copy | None] = []
        for read in reads:
            copy = kept.get((read.key, read.limit))
            young = copy is not None and 0 <= now_ms - copy.read_at_ms < max_age
            found.append(copy if young else None)
        return found
