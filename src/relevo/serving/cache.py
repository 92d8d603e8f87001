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
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class AnswerCache(Generic[V]):
    """An LRU of at most `max_entries`, each valid `ttl_ms` (0 disables the cache).

    >>> cache: AnswerCache[str] = AnswerCache(ttl_ms=1000, max_entries=2)
    >>> for key in "abc":
    ...     cache.put(key, key.upper(), now_ms=0)
    >>> cache.get("a", now_ms=1), cache.get("c", now_ms=999), cache.get("c", now_ms=1000)
    (None, 'C', None)
    >>> cache.put("d", "D", now_ms=5000)  # expired entries leave when a new one comes
    >>> len(cache)
    1
    """

    def __init__(self, ttl_ms: int, max_entries: int = 10_000) -> None:
        self.ttl_ms = ttl_ms
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[int, V]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, now_ms: int) -> V | None:
        found = self._entries.get(key)
        if found is None or now_ms - found[0] >= self.ttl_ms:
            if found is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: Hashable, value: V, now_ms: int) -> None:
        if self.ttl_ms <= 0:
            return
        self._entries[key] = (now_ms, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        # Expired answers leave too, oldest first: else the cache always fills up to
        # `max_entries` (a soak saw the API's RSS grow 29% in 10 minutes doing just that).
        while True:
            oldest = next(iter(self._entries.values()))
            if now_ms - oldest[0] < self.ttl_ms:
                break
            self._entries.popitem(last=False)
