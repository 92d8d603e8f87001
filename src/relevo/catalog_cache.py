"""Catalog documents kept decoded in each process, checked against a catalog generation.

Why: a decision reads the documents of a few hundred candidate items (stock, price,
category, attributes) and scores attribute neighbours from them. Items change rarely,
yet reading and decoding them from Redis on every request was about half of a
decision's CPU (``bench/decide_cpu.py``). Profiles, live models and everything a user
does are never cached here: only the catalog and what is computed from it alone.

Freshness. Every applied catalog upsert increments the store's catalog generation
(`keys.CATALOG_GENERATION`), after the documents, the index and the attribute postings
are written (`relevo.apply.Applier.apply_items`). A process reads the generation at most
once every `check_every_ms` (``RELEVO_CATALOG_REFRESH``, 1 s by default; the first read
after that long awaits the check) and drops everything it holds when it moved. So a
catalog change applied by any process reaches the decisions of every process within
`check_every_ms` (plus one round trip), and at once in the process that applied it (the
cache is one of its applier's hooks). 0 turns the cache off: every read goes to the store.

A read that was in flight while the cache was dropped does not fill it (its answer may
predate the change): a local epoch, bumped by every drop, tells. Size is bounded: past
`max_entries` documents (or derived values), the cache starts over.

Documents are shared between requests: callers must treat them as read-only.
"""

from __future__ import annotations

from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar

from relevo import catalog
from relevo.clock import Clock
from relevo.features.profile import ProfileState
from relevo.store import keys
from relevo.store.base import Store

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
MAX_ENTRIES = 200_000
_UNREAD = object()


class CatalogCache:
    """One process's decoded catalog (see the module docstring); `check_every_ms` 0: off."""

    def __init__(
        self, store: Store, clock: Clock, check_every_ms: int, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.store = store
        self.clock = clock
        self.check_every_ms = check_every_ms
        self.max_entries = max_entries
        #: item id → its document, or None when the catalog has no such item.
        self._docs: dict[str, dict[str, Any] | None] = {}
        self._derived: dict[Hashable, Any] = {}
        self._of_items: dict[tuple[str, Callable[[Any], Any]], Any] = {}
        self._generation: int | None = None
        self._checked_at: int | None = None
        self._epoch = 0

    @property
    def enabled(self) -> bool:
        return self.check_every_ms > 0

    async def items(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The catalog entries that exist among `item_ids` (as `catalog.get_items`)."""
        if not self.enabled:
            return await catalog.get_items(self.store, item_ids)
        await self._check()
        docs = self._docs
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for item_id in item_ids:  # one pass: all are held, nearly always
            doc = docs.get(item_id, _UNREAD)
            if doc is _UNREAD:
                missing.append(item_id)
            elif doc is not None:
                found[item_id] = doc  # type: ignore[assignment]
        if not missing:
            return found
        epoch = self._epoch
        read = await catalog.get_items(self.store, missing)
        if epoch == self._epoch:
            if len(docs) + len(missing) > self.max_entries:  # new dicts: `Held` keeps its own
                self._docs = docs = {}
                self._of_items = {}
            for item_id in missing:
                docs[item_id] = read.get(item_id)
        else:  # dropped meanwhile: answer with what was read, remember nothing
            docs = {**docs, **{item_id: read.get(item_id) for item_id in missing}}
        found = {}  # again, in the order asked
        for item_id in item_ids:
            doc = docs.get(item_id, _UNREAD)
            if doc is not None and doc is not _UNREAD:
                found[item_id] = doc  # type: ignore[assignment]
        return found

    async def documents(self, item_ids: Collection[str]) -> Mapping[str, dict[str, Any]]:
        """What `items` answers, as a mapping that looks a document up when asked, when
        every one of `item_ids` is held (nearly always): a recommendation reads the
        documents of its best few hundred candidates and looks at the first few dozen."""
        if self.enabled:
            await self._check()
            asked = set(item_ids)
            # (what ``self._docs.keys() >= asked`` says, in a third fewer instructions: a
            # set's difference with a dict looks its entries up with the hashes they have)
            if not asked.difference(self._docs):
                return Held(asked, self._docs)
        return await self.items(list(item_ids))

    async def derived(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """A value computed from the catalog only (attribute neighbours, the item count),
        computed once per catalog generation."""
        if not self.enabled:
            return await compute()
        await self._check()
        if key in self._derived:
            value: T = self._derived[key]
            return value
        epoch = self._epoch
        value = await compute()
        if epoch == self._epoch:
            if len(self._derived) >= self.max_entries:
                self._derived.clear()
            self._derived[key] = value
        return value

    async def derived_many(
        self, keys: Sequence[K], compute: Callable[[list[K]], Awaitable[list[T]]]
    ) -> list[T]:
        """Like `derived` for several keys; `compute` gets the keys not held, in one call
        (one store round trip for all of them), and returns their values in that order."""
        if not self.enabled:
            return await compute(list(keys))
        await self._check()
        held = self._derived
        missing = list(dict.fromkeys(key for key in keys if key not in held))
        if missing:
            epoch = self._epoch
            values: dict[Hashable, Any] = dict(zip(missing, await compute(missing), strict=True))
            if epoch == self._epoch:
                if len(held) + len(missing) > self.max_entries:
                    held.clear()
                held.update(values)
            else:
                held = {**held, **values}
        return [held[key] for key in keys]

    def of_item(self, item_id: str, doc: Mapping[str, Any], compute: Callable[[Any], T]) -> T:
        """`compute(doc)` for a document this cache returned, kept with it (an item's
        attribute tokens): computed once while the document is held, each time otherwise."""
        if self._docs.get(item_id) is not doc:
            return compute(doc)
        key = (item_id, compute)
        if key in self._of_items:
            value: T = self._of_items[key]
            return value
        value = self._of_items[key] = compute(doc)
        return value

    def drop(self) -> None:
        """Forget everything (the catalog changed)."""
        self._docs = {}
        self._derived = {}
        self._of_items = {}
        self._epoch += 1

    async def _check(self) -> None:
        now = self.clock.now_ms()
        if self._checked_at is not None and now - self._checked_at < self.check_every_ms:
            return
        # Claim the check before awaiting it: requests arriving meanwhile use what is held
        # rather than each reading the generation too.
        previous, self._checked_at = self._checked_at, now
        try:
            generation = await self.store.counter(keys.CATALOG_GENERATION)
        except BaseException:
            self._checked_at = previous  # the next read checks again
            raise
        if generation != self._generation:
            self._generation = generation
            self.drop()

    # -- as an `ApplyHook`: this process applied a catalog change ---------------------------
    def observe(self, state: ProfileState, record: dict[str, Any]) -> None:
        return None

    async def events_applied(self, noted: Sequence[tuple[dict[str, Any], Any]]) -> None:
        return None

    async def items_applied(self, items: Sequence[dict[str, Any]]) -> None:
        self.drop()


class Held(Mapping[str, dict[str, Any]]):
    """The documents of `asked` that exist, looked up in a cache's documents when read.

    The cache never changes a document it holds in place (a catalog change or the size
    bound gives it new dicts), so this reads what `CatalogCache.items` would have
    answered when it was made.
    """

    __slots__ = ("_asked", "_docs")

    def __init__(self, asked: set[str], docs: dict[str, dict[str, Any] | None]) -> None:
        self._asked = asked
        self._docs = docs

    def get(self, item_id: str, default: Any = None) -> Any:  # (the hot path: one call)
        if item_id not in self._asked:
            return default
        doc = self._docs[item_id]
        return default if doc is None else doc

    def __getitem__(self, item_id: str) -> dict[str, Any]:
        doc = self.get(item_id)
        if doc is None:
            raise KeyError(item_id)
        return doc  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return (item_id for item_id in self._asked if self._docs[item_id] is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(self._docs[item_id] is not None for item_id in self._asked)
