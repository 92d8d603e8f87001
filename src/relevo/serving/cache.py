"""Blended rankings cached per user and request, until the user's next event.

A recommendation costs model CPU and a few store reads; a page that asks again
(a reload, the back button) before the user did anything new gets the same
blend. The key holds the version of the user's profile document, which every
event applied to it changes, so the user's next event invalidates the entry by
construction, in every process, with no invalidation message. Entries also
expire after `ttl_ms`, so other users' activity (trending, co-visitation) and
model promotions (the model version is in the key too) show up.

Only the blended ranking is cached: the catalog is read again for every answer,
so an item that went out of stock is never served from the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class AnswerCache(Generic[V]):
    """An LRU of at most `max_entries` weighing at most `max_weight` in all (by `weigh`,
    1 per entry by default), each valid `ttl_ms` (0 disables the cache).

    >>> cache: AnswerCache[str] = AnswerCache(ttl_ms=1000, max_entries=2)
    >>> for key in "abc":
    ...     cache.put(key, key.upper(), now_ms=0)
    >>> cache.get("a", now_ms=1), cache.get("c", now_ms=999), cache.get("c", now_ms=1000)
    (None, 'C', None)
    >>> cache.put("d", "D", now_ms=5000)  # expired entries leave when a new one comes
    >>> len(cache)
    1
    >>> sized: AnswerCache[str] = AnswerCache(ttl_ms=1000, max_weight=5, weigh=len)
    >>> for key, value in [("a", "xx"), ("b", "yy"), ("c", "zzz")]:
    ...     sized.put(key, value, now_ms=0)
    >>> sized.get("a", now_ms=1), sized.get("b", now_ms=1), sized.weight
    (None, 'yy', 5)
    """

    def __init__(
        self,
        ttl_ms: int,
        max_entries: int = 10_000,
        *,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        self.ttl_ms = ttl_ms
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weigh = weigh or (lambda _: 1)
        self._entries: OrderedDict[Hashable, tuple[int, V, int]] = OrderedDict()
        self.weight = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, now_ms: int) -> V | None:
        found = self._entries.get(key)
        if found is None or now_ms - found[0] >= self.ttl_ms:
            if found is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: Hashable, value: V, now_ms: int) -> None:
        if self.ttl_ms <= 0:
            return
        if key in self._entries:
            self._drop(key)
        weight = self._weigh(value)
        self._entries[key] = (now_ms, value, weight)
        self.weight += weight
        while len(self._entries) > self.max_entries or (
            self.max_weight is not None and self.weight > self.max_weight and len(self) > 1
        ):
            self._drop(next(iter(self._entries)))
        # Expired answers leave too, oldest first: else the cache always fills up to
        # `max_entries` (a soak saw the API's RSS grow 29% in 10 minutes doing just that).
        while True:
            key, (at, _, _) = next(iter(self._entries.items()))
            if now_ms - at < self.ttl_ms:
                break
            self._drop(key)

    def _drop(self, key: Hashable) -> None:
        self.weight -= self._entries.pop(key)[2]
