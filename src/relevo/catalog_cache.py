"""Catalog documents kept decoded in each process, checked against a catalog generation.

Why: a decision reads the documents of a few hundred candidate items (stock, price,
category, attributes) and scores attribute neighbours from them. Items change rarely,
yet reading and decoding them from Redis on every request was about half of a
decision's CPU (``bench/decide_cpu.py``). Profiles, live models and everything a user
does are never cached here: only the catalog and what is computed from it alone.

Freshness. Every applied catalog upsert increments the store's catalog generation
(`keys.CATALOG_GENERATION`), after the documents, the index and the attribute postings
are written (`relevo.apply.Applier.apply_items`), then records which items it changed
(`keys.CATALOG_CHANGES`: the newest `CHANGES_KEPT` generations, `change_entry`). A
process reads the generation at most once every `check_every_ms`
(``RELEVO_CATALOG_REFRESH``, 1 s by default; the first read after that long awaits the
check). When it moved, the process reads the changes since the generation it knew and
drops the documents of those items; when a generation's entry is missing (trimmed, not
written yet, a bulk change of more than `CHANGED_IDS_KEPT` items) it drops everything.
Values derived from the catalog (`derived`: attribute postings and neighbours, the item
count, the newest items) are computed from items' attributes and listing alone, never
from stock or prices (which callers read from the documents), so they stay unless a
change since added or removed an item or changed an item's attributes or
``created_at`` (`relevo.live.attributes.catalog_change`): the stock and price updates
that make most of a shop's catalog traffic leave them. So a catalog change applied by
any process reaches the decisions of every process within `check_every_ms` (plus two
round trips), and at once in the process that applied it (the cache is one of its
applier's hooks, told the generation its change made).
Why not drop everything each time, as this did first: a site that changes stock every
second (an ERP's sync) would read every document again every second (one item upserted a
second, 2,000 items, decisions in process: 1.18-1.45 ms of CPU a decision against 0.79
without the upserts; then 1.09-1.16 against 0.83-1.03, the rest being the attribute
neighbours computed again, which stock updates now leave alone). 0 turns the cache off:
every read goes to the store.

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
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from relevo import catalog
from relevo.clock import Clock
from relevo.features.profile import ProfileState
from relevo.store import keys
from relevo.store.base import Store

if TYPE_CHECKING:
    from relevo.live.attributes import CatalogChange

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
MAX_ENTRIES = 200_000
CHANGES_KEPT = 256
"""Catalog generations whose changed items are kept (`keys.CATALOG_CHANGES`)."""
CHANGED_IDS_KEPT = 1_000
"""Item ids an entry lists at most: an upsert of more is recorded as a change of all."""
_UNREAD = object()
_ALL = "*"
_DOCUMENTS_ONLY = "\x01documents"
"""The line that marks a change of documents only (no item added or removed, no item's
attributes or ``created_at`` changed). A line, not a flag on the number, so that a
process of an earlier version reads it as one more id to forget (ids hold no control
character), and an entry of an earlier version, without it, counts as a change of
attributes."""


class Changed(NamedTuple):
    """What some catalog generations changed (`changed_between`)."""

    items: set[str]
    attributes: bool
    """Whether one of them added or removed an item or changed an item's attributes or
    ``created_at`` (`relevo.live.attributes.CatalogChange.attributes_changed`)."""


def change_entry(generation: int, item_ids: Sequence[str], *, attributes: bool = True) -> bytes:
    """The `keys.CATALOG_CHANGES` entry of one generation: its number, then the ids it
    changed (or `_ALL`), one a line (ids hold no control character: `relevo.events.Id`),
    then `_DOCUMENTS_ONLY` unless it changed `attributes`."""
    listed = item_ids if len(item_ids) <= CHANGED_IDS_KEPT else [_ALL]
    return "\n".join(
        [str(generation), *listed, *([] if attributes else [_DOCUMENTS_ONLY])]
    ).encode()


def changed_between(entries: Sequence[bytes], after: int, upto: int) -> Changed | None:
    """The items changed by generations ``after + 1`` to `upto` from their `entries`
    (newest first, as pushed; concurrent writers may push them a little out of order),
    or None when one is missing or changed everything.

    >>> changed = changed_between([change_entry(3, ["b"]), change_entry(2, ["a", "b"])], 1, 3)
    >>> sorted(changed.items), changed.attributes
    (['a', 'b'], True)
    >>> changed_between([change_entry(3, ["b"], attributes=False)], 2, 3)
    Changed(items={'b'}, attributes=False)
    >>> changed_between([change_entry(3, ["b"])], 1, 3) is None  # 2 is not there
    True
    """
    found: set[str] = set()
    seen: set[int] = set()
    attributes = False
    for entry in entries:
        number, *ids = entry.decode().split("\n")
        generation = int(number)
        if after < generation <= upto:
            if _ALL in ids:
                return None
            seen.add(generation)
            if ids and ids[-1] == _DOCUMENTS_ONLY:
                ids.pop()
            else:
                attributes = True
            found.update(ids)
    return Changed(found, attributes) if len(seen) == upto - after else None


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
        #: values derived from items' attributes and listing: dropped with a change of them.
        self._derived: dict[Hashable, Any] = {}
        #: (item id, compute) → (the document, what `compute` made of it)
        self._of_items: dict[tuple[str, Callable[[Any], Any]], tuple[Any, Any]] = {}
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
        """A value computed from items' attributes and listing alone (their tokens,
        postings and count: attribute neighbours; the newest items), computed once per
        change of them. Never from stock or prices: a stock update keeps it."""
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
        held = self._of_items.get(key)
        if held is not None and held[0] is doc:  # (a document dropped and read again: not)
            value: T = held[1]
            return value
        value = compute(doc)
        self._of_items[key] = (doc, value)
        return value

    def drop(self) -> None:
        """Forget everything (the catalog changed)."""
        self._docs = {}
        self._derived = {}
        self._of_items = {}
        self._epoch += 1

    def forget(self, item_ids: Collection[str], *, attributes: bool = True) -> None:
        """Forget these items' documents, and the derived values if the change was one
        of `attributes` (or of what items are listed).

        The documents are a new dict (`Held` reads the one it was given); values computed
        with `of_item` stay, kept with the document they came from."""
        docs = self._docs.copy()
        for item_id in item_ids:
            docs.pop(item_id, None)
        self._docs = docs
        if attributes:
            self._derived = {}
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
            known, self._generation = self._generation, generation
            try:
                changed = await self._changed(known, generation)
            except BaseException:  # (a store error, a cancelled request): unknown, all go
                self.drop()
                raise
            if changed is None:
                self.drop()
            else:
                self.forget(changed.items, attributes=changed.attributes)

    async def _changed(self, known: int | None, generation: int) -> Changed | None:
        """The items changed since generation `known`, or None: all of them may have."""
        if known is None or not known < generation <= known + CHANGES_KEPT:
            return None
        # twice as deep as needed: writers may push their entries a little out of order
        depth = 2 * (generation - known) + 16
        entries = await self.store.list_range(keys.CATALOG_CHANGES, 0, depth - 1)
        return changed_between(entries, known, generation)

    # -- as an `ApplyHook`: this process applied a catalog change ---------------------------
    def observe(self, state: ProfileState, record: dict[str, Any]) -> None:
        return None

    async def events_applied(self, noted: Sequence[tuple[dict[str, Any], Any]]) -> None:
        return None

    async def items_upserting(self, change: CatalogChange) -> None:
        return None

    async def items_applied(self, change: CatalogChange, generation: int) -> None:
        """Forget what this process's own upsert changed, at once; and if the cache knew the
        generation just before it, take the upsert's as known, so the next check does
        not read the change and forget the same again (its documents read twice, its
        attribute neighbours computed twice). A generation made meanwhile by another
        process leaves the cache behind, and the next check reads both."""
        self.forget(change.item_ids, attributes=change.attributes_changed)
        if self._generation == generation - 1:
            self._generation = generation


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
