"""The embedded store: every primitive in process memory.

It is fast (no I/O) and, in embedded mode, made durable by the event log and
snapshots (`relevo.eventlog.snapshot`): its whole content pickles to bytes and
back. Expiry follows the injected clock, so tests control it.
"""

from __future__ import annotations

import heapq
import pickle
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from itertools import islice
from operator import itemgetter
from typing import Any

from sortedcontainers import SortedList

from relevo.clock import Clock, SystemClock
from relevo.errors import InvalidInput
from relevo.features import site_dictionaries
from relevo.features.dictionaries import Dictionaries
from relevo.store import bucket
from relevo.store.base import (
    DECAY_REBASE_EXPONENT,
    BucketGrant,
    DecayedAdd,
    DecayedGroup,
    DecayedRead,
    Doc,
    DocRead,
    DocWrite,
    MapIncr,
    MarksSweep,
    StoredTop,
    StoreUsage,
    StreamEntry,
)
from relevo.store.usage import UsageTally


class _Document:
    __slots__ = ("value", "version")

    def __init__(self, version: int, value: bytes) -> None:
        self.version = version
        self.value = value


class _Marks(dict[bytes, int]):
    """A document's marks (mark -> ms recorded, in time order), kept under their own
    key, naming their document so `MemoryStore.sweep_marks` can match it.

    (Marks in a snapshot of an earlier version are plain dicts: no sweep sees them,
    and they go when their key expires, a horizon after their last write.)"""

    __slots__ = ("document",)

    def __init__(self, document: str) -> None:
        super().__init__()
        self.document = document


class _SortedSet:
    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self.order: Any = SortedList()

    def add(self, member: str, score: float) -> None:
        old = self.scores.get(member)
        if old is not None:
            self.order.remove((old, member))
        self.scores[member] = score
        self.order.add((score, member))

    def remove(self, member: str) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        self.order.remove((old, member))
        return True


class _Periodic:
    """Buckets of a periodic counter; those more than `kept` behind the newest are dropped."""

    __slots__ = ("buckets", "newest")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.newest: int | None = None

    def add(self, bucket: int, by: int, kept: int) -> None:
        newest = bucket if self.newest is None else self.newest
        if bucket < newest - kept:
            return
        self.buckets[bucket] = self.buckets.get(bucket, 0) + by
        if bucket > newest:
            for stale in [b for b in self.buckets if b < bucket - kept]:
                del self.buckets[stale]
            newest = bucket
        self.newest = newest


class _Decayed:
    """Scores as of `landmark` (see `relevo.store.base.DECAY_REBASE_EXPONENT`)."""

    __slots__ = ("landmark", "scores")

    def __init__(self, landmark: int) -> None:
        self.landmark = landmark
        self.scores: dict[str, float] = {}

    def add(self, weights: Mapping[str, float], at_ms: int, half_life_ms: int) -> None:
        exponent = (at_ms - self.landmark) / half_life_ms
        if exponent > DECAY_REBASE_EXPONENT:
            factor = 2.0**-exponent
            self.scores = {member: score * factor for member, score in self.scores.items()}
            self.landmark, exponent = at_ms, 0.0
        scale = 2.0**exponent
        for member, weight in weights.items():
            self.scores[member] = self.scores.get(member, 0.0) + weight * scale

    def trim(self, max_len: int) -> None:
        """Keep the `max_len` best (as ``ZREMRANGEBYRANK`` does on Redis).

        An add pushes out a few members: those scoring at most the few lowest scores
        (compared as plain floats), ranked like Redis (ties by member), rather than the
        whole set sorted with a key function."""
        excess = len(self.scores) - max_len
        if excess <= 0:
            return
        highest_dropped = heapq.nsmallest(excess, self.scores.values())[-1]
        candidates = sorted(
            (score, member) for member, score in self.scores.items() if score <= highest_dropped
        )
        for _, member in candidates[:excess]:
            del self.scores[member]


class _Stream:
    """Messages with increasing sequence numbers, and the ids recently seen."""

    __slots__ = ("entries", "next", "seen")

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, bytes]] = []
        self.next = 1
        self.seen: dict[str, int] = {}


class MemoryStore:
    """All state in dictionaries, one per primitive kind (a key belongs to one kind)."""

    backend = "embedded"

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self.dictionaries = Dictionaries()
        self._data: dict[str, Any] = {}
        self._expires: dict[str, int] = {}

    # -- housekeeping -------------------------------------------------------------------
    def _live(self, key: str) -> Any:
        expires = self._expires.get(key)
        if expires is not None and expires <= self._clock.now_ms():
            self._drop(key)
            return None
        return self._data.get(key)

    def _drop(self, key: str) -> bool:
        self._expires.pop(key, None)
        return self._data.pop(key, None) is not None

    def _expire(self, key: str, ttl_ms: int | None) -> None:
        if ttl_ms is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = self._clock.now_ms() + ttl_ms

    def purge_expired(self) -> int:
        """Drop every expired key now (reads drop them lazily anyway)."""
        now = self._clock.now_ms()
        dead = [key for key, at in self._expires.items() if at <= now]
        for key in dead:
            self._drop(key)
        return len(dead)

    def dump(self) -> bytes:
        """The whole content, for a snapshot."""
        return pickle.dumps((self._data, self._expires), protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, blob: bytes) -> None:
        """Replace the content with a snapshot's (our own file: pickle is trusted here)."""
        self._data, self._expires = pickle.loads(blob)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- key-value ----------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return value if isinstance(value, bytes) else None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

    async def set_many(self, values: Mapping[str, bytes], ttl_ms: int | None = None) -> None:
        for key, value in values.items():
            self._data[key] = value
            self._expire(key, ttl_ms)

    async def write_many(
        self,
        values: Mapping[str, bytes],
        ttl_ms: int | None = None,
        increments: Sequence[MapIncr] = (),
    ) -> None:
        await self.set_many(values, ttl_ms)
        for write in increments:
            if write.increments:
                await self.map_incr(write.key, write.increments, write.ttl_ms)

    async def delete(self, keys: Sequence[str]) -> int:
        return sum(self._live(key) is not None and self._drop(key) for key in keys)

    async def lease(self, key: str, owner: str, ttl_ms: int) -> bool:
        holder = self._live(key)
        if holder is not None and holder != owner.encode():
            return False
        await self.set_many({key: owner.encode()}, ttl_ms)
        return True

    async def release(self, key: str, owner: str) -> bool:
        if self._live(key) != owner.encode():
            return False
        return self._drop(key)

    async def ttl_ms(self, key: str) -> int | None:
        if self._live(key) is None or key not in self._expires:
            return None
        return self._expires[key] - self._clock.now_ms()

    # -- counters -----------------------------------------------------------------------
    async def incr(self, key: str, by: int = 1) -> int:
        value = int(self._live(key) or 0) + by
        self._data[key] = value
        return value

    async def counter(self, key: str) -> int:
        return int(self._live(key) or 0)

    async def periodic_add(
        self, entries: Sequence[tuple[str, int, int]], bucket_ms: int, keep_ms: int
    ) -> None:
        for key, ts_ms, by in entries:
            periodic: _Periodic | None = self._live(key)
            if periodic is None:
                periodic = self._data[key] = _Periodic()
            periodic.add(ts_ms // bucket_ms, by, keep_ms // bucket_ms)

    async def periodic_sum(self, key: str, from_ms: int, to_ms: int, bucket_ms: int) -> int:
        periodic: _Periodic | None = self._live(key)
        if periodic is None:
            return 0
        low, high = from_ms // bucket_ms, to_ms // bucket_ms
        return sum(count for bucket, count in periodic.buckets.items() if low <= bucket <= high)

    # -- bounded list -------------------------------------------------------------------
    async def list_push(self, key: str, values: Sequence[bytes], max_len: int) -> None:
        items: list[bytes] | None = self._live(key)
        if items is None:
            items = self._data[key] = []
        items[:0] = reversed(values)
        del items[max_len:]

    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[bytes]:
        items: list[bytes] = self._live(key) or []
        end = None if stop == -1 else stop + 1
        return list(items[start:end])

    async def list_remove(self, key: str, values: Sequence[bytes]) -> int:
        items: list[bytes] | None = self._live(key)
        if not items or not values:
            return 0
        unwanted = set(values)
        kept = [item for item in items if item not in unwanted]
        removed = len(items) - len(kept)
        items[:] = kept
        if not items:
            self._drop(key)
        return removed

    # -- map ----------------------------------------------------------------------------
    def _map(self, key: str) -> dict[str, Any]:
        fields: dict[str, Any] | None = self._live(key)
        if fields is None:
            fields = self._data[key] = {}
        return fields

    async def map_set(self, key: str, fields: Mapping[str, bytes]) -> None:
        self._map(key).update(fields)

    async def map_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        found: dict[str, Any] = self._live(key) or {}
        return [_as_bytes(found.get(name)) for name in fields]

    async def map_all(self, key: str) -> dict[str, bytes]:
        found: dict[str, Any] = self._live(key) or {}
        return {name: _as_bytes(value) or b"" for name, value in found.items()}

    async def map_all_many(self, keys: Sequence[str]) -> list[dict[str, bytes]]:
        return [await self.map_all(key) for key in keys]

    async def map_incr(
        self, key: str, increments: Mapping[str, int], ttl_ms: int | None = None
    ) -> dict[str, int]:
        fields = self._map(key)
        for name, by in increments.items():
            fields[name] = int(fields.get(name, 0)) + by
        if ttl_ms is not None:
            self._expire(key, ttl_ms)
        return {name: int(fields[name]) for name in increments}

    async def map_add(
        self, key: str, fields: Mapping[str, bytes], ttl_ms: int | None = None
    ) -> list[bool]:
        found = self._map(key)
        added = []
        for name, value in fields.items():
            added.append(name not in found)
            found.setdefault(name, value)
        if ttl_ms is not None:
            self._expire(key, ttl_ms)
        return added

    async def map_delete(self, key: str, fields: Sequence[str]) -> int:
        found: dict[str, Any] = self._live(key) or {}
        removed = sum(found.pop(name, None) is not None for name in fields)
        if key in self._data and not found:
            self._drop(key)
        return removed

    # -- sorted set ---------------------------------------------------------------------
    async def zadd(self, key: str, members: Mapping[str, float]) -> None:
        zset: _SortedSet | None = self._live(key)
        if zset is None:
            zset = self._data[key] = _SortedSet()
        for member, score in members.items():
            zset.add(member, float(score))

    async def zrange_by_score(
        self, key: str, low: float, high: float, offset: int = 0, limit: int | None = None
    ) -> list[tuple[str, float]]:
        zset: _SortedSet | None = self._live(key)
        if zset is None:
            return []
        order = zset.order
        start = bisect_left(order, (low, ""))
        stop = bisect_right(order, (high, "\U0010ffff"))
        start += offset
        if limit is not None:
            stop = min(stop, start + limit)
        return [(member, score) for score, member in order[start:stop]]

    async def zrem(self, key: str, members: Sequence[str]) -> int:
        zset: _SortedSet | None = self._live(key)
        if zset is None:
            return 0
        removed = sum(zset.remove(member) for member in members)
        if not zset.scores:
            self._drop(key)
        return removed

    async def zcard(self, key: str) -> int:
        zset: _SortedSet | None = self._live(key)
        return 0 if zset is None else len(zset.scores)

    # -- decayed sorted set -------------------------------------------------------------
    async def decayed_add(
        self,
        adds: Sequence[DecayedAdd],
        half_life_ms: int,
        max_len: int,
        ttl_ms: int | None = None,
    ) -> None:
        for add in adds:
            decayed: _Decayed | None = self._live(add.key)
            if decayed is None:
                decayed = self._data[add.key] = _Decayed(add.at_ms)
            decayed.add(add.weights, add.at_ms, half_life_ms)
            decayed.trim(max_len)
            if ttl_ms is not None:
                self._expire(add.key, ttl_ms)

    async def decayed_add_groups(self, groups: Sequence[DecayedGroup]) -> None:
        for group in groups:
            await self.decayed_add(group.adds, group.half_life_ms, group.max_len, group.ttl_ms)

    async def decayed_remove(self, removals: Mapping[str, Sequence[str]]) -> None:
        for key, members in removals.items():
            decayed: _Decayed | None = self._live(key)
            if decayed is not None:
                for member in members:
                    decayed.scores.pop(member, None)

    async def decayed_top(
        self, reads: Sequence[DecayedRead], now_ms: int
    ) -> list[list[tuple[str, float]]]:
        tops = await self.decayed_top_stored(reads)
        return [top.decayed(now_ms, r.half_life_ms) for top, r in zip(tops, reads, strict=True)]

    async def decayed_top_stored(self, reads: Sequence[DecayedRead]) -> list[StoredTop]:
        found: list[StoredTop] = []
        for read in reads:
            decayed: _Decayed | None = self._live(read.key)
            if decayed is None or read.limit <= 0:
                found.append(StoredTop([], None))
                continue
            best = heapq.nlargest(read.limit, decayed.scores.items(), key=_BY_SCORE_THEN_MEMBER)
            found.append(StoredTop(best, decayed.landmark))
        return found

    # -- stream -------------------------------------------------------------------------
    async def stream_add(
        self,
        key: str,
        messages: Sequence[tuple[str, bytes]],
        now_ms: int,
        dedupe_ms: int,
        max_len: int,
    ) -> list[str | None]:
        stream: _Stream | None = self._live(key)
        if stream is None:
            stream = self._data[key] = _Stream()
        _forget_before(stream.seen, now_ms - dedupe_ms)
        positions: list[str | None] = []
        for message_id, body in messages:
            if message_id in stream.seen:
                positions.append(None)
                continue
            stream.seen[message_id] = now_ms
            stream.entries.append((stream.next, message_id, body))
            positions.append(str(stream.next))
            stream.next += 1
        del stream.entries[: max(0, len(stream.entries) - max_len)]
        return positions

    async def stream_read(self, key: str, after: str | None, limit: int) -> list[StreamEntry]:
        stream: _Stream | None = self._live(key)
        if stream is None:
            return []
        if after is not None and not (after.isascii() and after.isdigit()):
            raise InvalidInput(f"{after!r} is not a cursor of this stream", field="after")
        start = bisect_right(stream.entries, (int(after or 0), "\U0010ffff"))
        return [
            StreamEntry(str(seq), message_id, body)
            for seq, message_id, body in stream.entries[start : start + limit]
        ]

    # -- token bucket -------------------------------------------------------------------
    async def take_tokens(
        self, key: str, cost: int, rate_per_s: int, burst: int, now_ms: int
    ) -> BucketGrant:
        bucket.check(cost, rate_per_s, burst)
        grant, state, full_in_ms = bucket.take(self._live(key), cost, rate_per_s, burst, now_ms)
        self._data[key] = state
        self._expire(key, full_in_ms)
        return grant

    # -- scanning -----------------------------------------------------------------------
    async def sample_keys(self, prefix: str, suffix: str, limit: int) -> list[str]:
        found: list[str] = []
        for key in list(self._data):
            if len(found) >= limit:
                break
            if key.startswith(prefix) and key.endswith(suffix) and self._live(key) is not None:
                found.append(key)
        return found

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        return [
            key
            for key in list(self._data)
            if key.startswith(prefix) and self._live(key) is not None
        ]

    async def usage(self, sample_per_kind: int = 100) -> StoreUsage:
        self.purge_expired()
        tally = UsageTally(sample_per_kind)
        live = list(self._data)
        tally.add(live, [key not in self._expires for key in live])
        # What a key costs in a snapshot (the embedded store's durable form): its pickle.
        sizes = {
            key: len(key.encode()) + len(pickle.dumps(self._data[key], pickle.HIGHEST_PROTOCOL))
            for key in tally.sampled_keys()
        }
        usage = tally.measured(sizes, self.backend)
        usage.measure = "pickled size (as in a snapshot)"
        usage.memory_source = "embedded: no server memory to report"
        return usage

    # -- documents ----------------------------------------------------------------------
    async def docs_read(self, reads: Sequence[DocRead]) -> list[Doc]:
        docs = []
        for read in reads:
            document: _Document | None = self._live(read.key)
            marks: dict[bytes, int] = self._live(read.marks_key) or {}
            marked = [mark in marks for mark in read.marks]
            if document is None:
                docs.append(Doc(0, None, marked))
            else:
                docs.append(Doc(document.version, document.value, marked))
        await site_dictionaries.learn(self, [doc.value for doc in docs])
        return docs

    async def docs_write(self, writes: Sequence[DocWrite]) -> list[bool]:
        results = []
        for write in writes:
            document: _Document | None = self._live(write.key)
            version = 0 if document is None else document.version
            if version != write.expected_version:
                results.append(False)
                continue
            self._data[write.key] = _Document(version + 1, write.value)
            self._expire(write.key, write.ttl_ms)
            if write.marks:
                marks: dict[bytes, int] | None = self._live(write.marks_key)
                if marks is None:
                    marks = self._data[write.marks_key] = _Marks(write.key)
                for mark in write.marks:
                    marks[mark] = write.now_ms
                _forget_before(marks, write.now_ms - write.marks_horizon_ms)
                self._expire(write.marks_key, write.marks_horizon_ms)
            results.append(True)
        return results

    async def sweep_marks(
        self, match: str, cursor: str, before_ms: int, count: int = 1000
    ) -> MarksSweep:
        """The cursor is a position in the keys' order: a key removed meanwhile shifts
        the rest, so a pass may miss a few marks (the next pass takes them).

        Marks past the horizon of an idle document mostly go anyway when their key
        expires (a horizon after its last write); this drops those that share a key
        with younger ones, as on Redis.
        """
        start = int(cursor)
        now = self._clock.now_ms()
        chunk = list(islice(self._data.items(), start, start + count))
        seen = swept = freed = 0
        for key, value in chunk:
            if not isinstance(value, _Marks) or not fnmatchcase(value.document, match):
                continue
            expires = self._expires.get(key)
            if expires is not None and expires <= now:
                continue
            seen += 1
            if dropped := _forget_before(value, before_ms):
                swept += 1
                freed += sum(len(mark) for mark in dropped)
        end = start + len(chunk)
        return MarksSweep("0" if len(chunk) < count else str(end), seen, swept, freed)


def _forget_before(marks: dict[Any, int], cutoff: int) -> list[Any]:
    """Drop marks older than `cutoff` (and return them); marks are inserted in time
    order, so stop early."""
    stale = []
    for mark, at in marks.items():
        if at >= cutoff:
            break
        stale.append(mark)
    for mark in stale:
        del marks[mark]
    return stale


_BY_SCORE_THEN_MEMBER = itemgetter(1, 0)
"""A ``(member, score)`` pair's rank key: by score, ties by member, as Redis orders."""


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()
