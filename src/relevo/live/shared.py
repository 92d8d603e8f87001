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

from collections.abc import Sequence

from relevo.store.base import DecayedRead, Store, StoredTop

MAX_KEPT_MEMBERS = 500_000
"""Members kept at most, over all copies (one per set and depth read): ~45 MB (a member
costs 89 bytes as a pair of its id and a float; tracemalloc). A site whose categories'
trending would hold more starts over rather than growing without bound. Why pairs, not
ids and an array of scores at 16 bytes a member: decaying a copy then costs a float
object made per member and a zip, 2.8% more instructions per decision
(`bench.decide_cpu --callgrind`: 4.35 M against 4.23 M)."""

Top = list[tuple[str, float]]


class SharedTops:
    def __init__(self, store: Store, max_age_ms: int) -> None:
        self.store = store
        self.max_age_ms = max_age_ms
        #: (key, limit) -> (the top as stored, the engine time it was read)
        self._kept: dict[tuple[str, int], tuple[StoredTop, int]] = {}
        #: Moves on each `invalidate`: a read that began before one is not kept.
        self._generation = 0
        #: Members in `_kept`, counted as copies are added.
        self._members = 0

    @property
    def kept_members(self) -> int:
        """Members held over all copies (at most `MAX_KEPT_MEMBERS`)."""
        return self._members

    def invalidate(self) -> None:
        """Forget every copy: this process has just changed the sets."""
        self._generation += 1
        self._kept.clear()
        self._members = 0

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
        tops = [top if top is not None else next(fetched) for top in young]
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
            fresh = {(read.key, read.limit): top for read, top in zip(reads, tops, strict=True)}
            kept = self._kept
            for key in fresh:  # a refreshed copy replaces its old one
                replaced = kept.pop(key, None)
                if replaced is not None:
                    self._members -= len(replaced[0].members)
            added = sum(len(top.members) for top in fresh.values())
            if self._members + added > MAX_KEPT_MEMBERS:
                kept.clear()
                self._members = 0
            for key, top in fresh.items():
                kept[key] = (top, now_ms)
            self._members += added
        return tops

    def _young(self, reads: Sequence[DecayedRead], now_ms: int) -> list[StoredTop | None]:
        """The kept copy of each read, or None when there is none younger than the limit
        (a clock set back makes every copy old)."""
        kept, max_age = self._kept, self.max_age_ms
        found: list[StoredTop | None] = []
        for read in reads:
            copy = kept.get((read.key, read.limit))
            found.append(copy[0] if copy is not None and 0 <= now_ms - copy[1] < max_age else None)
        return found
