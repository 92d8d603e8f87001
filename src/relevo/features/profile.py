"""The profile: everything relevo knows about one user, updated event by event.

`apply_event` folds one event record into a `ProfileState`; `render` turns the
state into the JSON that `GET /v1/users/{id}`, rules and models read, as of a given
time. Both are pure: the same events in the same order give the same state,
whether they arrive live, from a backfill or from a replay of the log.

The state is a msgspec struct encoded as MessagePack (compact, fast), stored as
one document per user. Fields are positional (``array_like``) to keep documents
small: new fields go at the end, with defaults, so older documents still decode.
Redis stores them in a compact layout, compressed (see `encode`,
`relevo.features.compact` and `relevo.features.dictionaries`): profiles are most of
what Redis holds.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from operator import attrgetter, ge
from typing import Any

import msgspec

from relevo import consent
from relevo.clock import to_iso
from relevo.features.sessions import Session, touch
from relevo.features.windows import (
    DAY_MS,
    EXACT_HORIZON_MS,
    WINDOWS_MS,
    WindowCounter,
    counted_once,
)

MAX_TYPES = 64
MAX_CATEGORIES = 128
MAX_RECENT_ITEMS = 50
MAX_PURCHASED_ITEMS = 100
NOT_INTERACTIONS = frozenset({"impression", "remove_from_cart", "consent", "identify"})
"""Event types that don't make an item "recent" for the user."""

DEFAULT_AFFINITY_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
}


@dataclass(frozen=True, slots=True)
class FeatureParams:
    """The knobs of the feature code (from `relevo.config.Settings`)."""

    session_timeout_ms: int = 30 * 60_000
    affinity_half_life_ms: int = 7 * DAY_MS
    affinity_weights: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_AFFINITY_WEIGHTS)
    )
    consent_required: bool = False
    """Opt-in regime: without a recorded personalization consent, keep no profile."""


class Seen(msgspec.Struct, array_like=True):
    first: int
    last: int


class Affinity(msgspec.Struct, array_like=True):
    """A decayed score, stored as its value at time `at`."""

    score: float
    at: int


class CartLine(msgspec.Struct, array_like=True):
    quantity: int
    added_at: int


class RecentItem(msgspec.Struct, array_like=True):
    item_id: str
    at: int


class ArmedTimer(msgspec.Struct, array_like=True):
    """A timer rule armed for this user (see `relevo.rules.timers`)."""

    due_at: int
    armed_by: str
    armed_at: int


class ProfileState(msgspec.Struct, array_like=True):
    user_id: str
    created_at: int = 0
    updated_at: int = 0
    events: int = 0
    counts: dict[str, WindowCounter] = msgspec.field(default_factory=dict)
    category_counts: dict[str, dict[str, WindowCounter]] = msgspec.field(default_factory=dict)
    seen: dict[str, Seen] = msgspec.field(default_factory=dict)
    purchases: int = 0
    monetary: float = 0.0
    last_purchase_at: int | None = None
    session: Session | None = None
    sessions: int = 0
    affinities: dict[str, Affinity] = msgspec.field(default_factory=dict)
    recent_items: list[RecentItem] = msgspec.field(default_factory=list)
    cart: dict[str, CartLine] = msgspec.field(default_factory=dict)
    segments: list[str] = msgspec.field(default_factory=list)
    consent: dict[str, bool] = msgspec.field(default_factory=dict)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    timers: dict[str, ArmedTimer] = msgspec.field(default_factory=dict)
    purchased: list[RecentItem] = msgspec.field(default_factory=list)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ProfileState)


DEFLATED = 0x01
"""First byte of a deflated MessagePack document (the layout before `COMPACT_V1`). A
plain one is a MessagePack array, whose first byte is 0x90-0x9f or 0xdc-0xdd, never
this or a `COMPACT_*` byte: documents written before compression (or too small to gain
from it) still decode."""
COMPACT_V1 = 0x02
"""First byte of a document in the first compact layout, deflated with its preset
dictionary (`relevo.features.compact.unpack`): read, no longer written."""
COMPACT_V2 = 0x03
"""First byte of a document in the compact layout (`relevo.features.compact.layout`),
compressed with zstd and the dictionary named next (`relevo.features.dictionaries`):
what `encode` writes for Redis."""
_COMPACT_V2_BYTE = bytes((COMPACT_V2,))
_SMALL = 96


def encode(
    state: ProfileState,
    *,
    deflate: bool = True,
    dictionaries: _dictionaries.Dictionaries | None = None,
) -> bytes:
    """The compact layout, compressed (on a shopper of 15 events, 1/3.6 of the
    MessagePack with the built-in dictionary, 1/4.9 with a site's), or plain
    MessagePack when that is smaller.

    `deflate=False` keeps it plain: the embedded store trades memory for the time the
    compact layout costs per write (its profiles live in the process, not in a shared
    Redis). `dictionaries` are the store's (`Store.dictionaries`): the document is
    compressed with their active one (the built-in one when not given).

    A state the compact layout cannot hold exactly (a counter not kept by
    `WindowCounter.add`, a timestamp that is not an int) is written as deflated
    MessagePack, the earlier layout.

    >>> state = ProfileState(user_id="u1", recent_items=[RecentItem("sku-1", 1)] * 50)
    >>> blob = encode(state)
    >>> blob[0] == COMPACT_V2, len(blob) < len(_encoder.encode(state)), decode(blob) == state
    (True, True, True)
    >>> encode(ProfileState(user_id="u1"))[0] in (DEFLATED, COMPACT_V1, COMPACT_V2)  # too small
    False
    """
    if not deflate:
        return _encoder.encode(state)
    try:
        layout, floor = compact.measured(state)
    except (ValueError, TypeError):
        return _deflated(_encoder.encode(state))
    # The MessagePack is encoded only when its length decides: `floor` (no longer than
    # it) shows most states to be past `_SMALL` and longer than their compact document.
    raw = None
    if floor < _SMALL:
        raw = _encoder.encode(state)
        if len(raw) < _SMALL:
            return raw
    packed = _COMPACT_V2_BYTE + (dictionaries or _dictionaries.builtin_only()).compress(layout)
    if len(packed) < floor:
        return packed
    if raw is None:
        raw = _encoder.encode(state)
    return packed if len(packed) < len(raw) else raw


def _deflated(raw: bytes) -> bytes:
    """A state the compact layout cannot hold: deflated MessagePack (or plain, smaller)."""
    if len(raw) < _SMALL:
        return raw
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = bytes((DEFLATED,)) + deflater.compress(raw) + deflater.flush()
    return packed if len(packed) < len(raw) else raw


def decode(blob: bytes, dictionaries: _dictionaries.Dictionaries | None = None) -> ProfileState:
    """A document of any layout: compact (V2 with one of `dictionaries`, the store's;
    V1), deflated MessagePack, plain MessagePack."""
    first = blob[:1]
    if first == b"\x03":
        return compact.unlayout(
            # a copy of the bytes after the first (~300) costs less than a memoryview of
            # them (~2,000 instructions made, ~1,000 more for zstd to read)
            (dictionaries or _dictionaries.builtin_only()).decompress(blob[1:])
        )
    if first == b"\x02":
        return compact.unpack(memoryview(blob)[1:])
    if first == b"\x01":
        return _decoder.decode(zlib.decompress(memoryview(blob)[1:], -15))
    return _decoder.decode(blob)


def event_categories(record: dict[str, Any]) -> list[str]:
    """Categories an event touches: its own and those of its line items, once each."""
    found: list[str] = []
    category = record.get("category")
    if category is not None:
        found.append(category)
    for line in record.get("items", ()):
        line_category = line.get("category")
        if line_category is not None and line_category not in found:
            found.append(line_category)
    return found


def event_lines(record: dict[str, Any]) -> list[tuple[str, int, float | None]]:
    """(item_id, quantity, unit price) of an event: its items, or its single item_id."""
    if "items" not in record:  # most events: no comprehension made and run over nothing
        item_id = record.get("item_id")
        return [] if item_id is None else [(item_id, 1, None)]
    lines = [
        (line["item_id"], line.get("quantity", 1), line.get("price"))
        for line in record.get("items", ())
    ]
    item_id = record.get("item_id")
    if item_id is not None and all(line[0] != item_id for line in lines):
        lines.append((item_id, 1, None))
    return lines


def apply_event(state: ProfileState, record: dict[str, Any], params: FeatureParams) -> None:
    """Fold one event record into the state (in place), as the user's consent allows.

    Without personalization consent the state keeps only the consent (a refusal clears
    the rest); see `relevo.consent`. The gate is here, in the one feature code path, so
    live traffic, replays and training-set generation all honour it.
    """
    if record["type"] == consent.CONSENT_EVENT:
        state.consent.update(consent.purposes_of(record))
    if not consent.personalization_allowed(state.consent, params.consent_required):
        _forget(state)
        return
    _fold(state, record, params)


def _forget(state: ProfileState) -> None:
    """Everything but who the user is and what they consented to."""
    blank = ProfileState(user_id=state.user_id, consent=state.consent)
    for name in state.__struct_fields__:
        setattr(state, name, getattr(blank, name))


def _fold(state: ProfileState, record: dict[str, Any], params: FeatureParams) -> None:
    ts: int = record["timestamp"]
    kind: str = record["type"]
    state.events += 1
    # Comparisons, not min() and max(): those parse their (keyword) arguments in C on
    # every call, ~1,400 instructions each, and the fold makes six of them per event.
    # A field is written only when it changes (a struct's setattr is not free).
    if state.events == 1 or ts < state.created_at:
        state.created_at = ts
    if ts > state.updated_at:
        state.updated_at = ts

    categories = event_categories(record)
    lines = event_lines(record)
    _count(state, kind, categories, ts)
    _seen(state, kind, ts)
    state.session, started = touch(
        state.session, ts, record.get("session_id"), params.session_timeout_ms
    )
    if started:
        state.sessions += 1
    _affinity(state, kind, categories, ts, params)
    if kind not in NOT_INTERACTIONS and lines:
        _remember(state.recent_items, lines, ts, MAX_RECENT_ITEMS)
    if kind in {"add_to_cart", "remove_from_cart", "purchase"}:
        _cart(state, kind, lines, ts)
    if kind == "purchase":
        _purchase(state, record, lines, ts)
        _remember(state.purchased, lines, ts, MAX_PURCHASED_ITEMS)


def _count(state: ProfileState, kind: str, categories: list[str], ts: int) -> None:
    counter = state.counts.get(kind)
    if counter is not None:
        counter.add(ts)
    elif len(state.counts) < MAX_TYPES:
        state.counts[kind] = counted_once(ts)
    else:
        return
    if not categories:
        return
    by_category = state.category_counts.get(kind)
    if by_category is None:
        by_category = state.category_counts[kind] = {}
    for category in categories:
        counter = by_category.get(category)
        if counter is not None:
            counter.add(ts)
            continue
        if len(by_category) >= MAX_CATEGORIES:
            _evict_stalest(by_category)
        by_category[category] = counted_once(ts)


def _evict_stalest(by_category: dict[str, WindowCounter]) -> None:
    stalest = min(by_category, key=lambda name: by_category[name].newest)
    del by_category[stalest]


def _seen(state: ProfileState, kind: str, ts: int) -> None:
    seen = state.seen.get(kind)
    if seen is None:
        state.seen[kind] = Seen(ts, ts)
    else:
        if ts < seen.first:  # min() and max() as comparisons: see `_fold`
            seen.first = ts
        if ts > seen.last:
            seen.last = ts


def decayed(affinity: Affinity, now_ms: int, half_life_ms: int) -> float:
    """The score at `now_ms` (scores decay by half every `half_life_ms`).

    >>> decayed(Affinity(score=4.0, at=0), now_ms=2 * DAY_MS, half_life_ms=DAY_MS)
    1.0
    """
    return float(affinity.score * 2.0 ** (-(now_ms - affinity.at) / half_life_ms))


def _affinity(
    state: ProfileState, kind: str, categories: list[str], ts: int, params: FeatureParams
) -> None:
    weight = params.affinity_weights.get(kind, 0.0)
    if not weight:
        return
    for category in categories:
        current = state.affinities.get(category)
        if current is None:
            if len(state.affinities) >= MAX_CATEGORIES:
                weakest = min(
                    state.affinities,
                    key=lambda c: decayed(state.affinities[c], ts, params.affinity_half_life_ms),
                )
                del state.affinities[weakest]
            state.affinities[category] = Affinity(weight, ts)
        elif ts >= current.at:
            current.score = decayed(current, ts, params.affinity_half_life_ms) + weight
            current.at = ts
        else:  # a late event adds what is left of its weight at the stored time
            current.score += weight * 2.0 ** (-(current.at - ts) / params.affinity_half_life_ms)


def _remember(
    recent: list[RecentItem], lines: list[tuple[str, int, float | None]], ts: int, most: int
) -> None:
    """Keep the newest time per item of the `lines`, newest first, at most `most` items."""
    for item_id, _, _ in lines:
        if not recent:  # a new profile's first item
            recent.append(RecentItem(item_id, ts))
            continue
        if recent[0].item_id == item_id and recent[0].at <= ts:
            recent[0].at = ts  # the common case: the same item again, newest
            continue
        # Searched in C (`map`, `list.index`, `compress`), not by a generator that
        # resumes a Python frame per entry: a new item is looked for in all 50.
        known_ids = list(map(_ITEM_ID, recent))
        if item_id in known_ids:
            known = known_ids.index(item_id)
            if recent[known].at >= ts:
                continue
            del recent[known]
        not_newer = map(ge, repeat(ts), map(_AT, recent))  # entry.at <= ts, entry by entry
        position = next(compress(count(), not_newer), len(recent))
        recent.insert(position, RecentItem(item_id, ts))
    del recent[most:]


_ITEM_ID = attrgetter("item_id")
_AT = attrgetter("at")


def _cart(
    state: ProfileState, kind: str, lines: list[tuple[str, int, float | None]], ts: int
) -> None:
    cart = state.cart
    if kind == "add_to_cart":
        for item_id, quantity, _ in lines:
            line = cart.get(item_id)
            if line is None:
                cart[item_id] = CartLine(quantity, ts)
            else:
                line.quantity += quantity
    elif kind == "remove_from_cart" or lines:
        for item_id, quantity, _ in lines:
            line = cart.get(item_id)
            if line is not None:
                line.quantity -= quantity
                if line.quantity <= 0:
                    del cart[item_id]
    else:  # a purchase without lines checks the whole cart out
        cart.clear()


def _purchase(
    state: ProfileState, record: dict[str, Any], lines: list[tuple[str, int, float | None]], ts: int
) -> None:
    state.purchases += 1
    value = record.get("value")
    if value is None:
        value = sum(quantity * price for _, quantity, price in lines if price is not None)
    state.monetary += float(value)
    last = state.last_purchase_at
    state.last_purchase_at = ts if last is None or ts > last else last


def render(state: ProfileState, now_ms: int, params: FeatureParams) -> dict[str, Any]:
    """The profile as JSON, as of `now_ms` (windows and decay are relative to it)."""
    rendered: dict[str, Any] = plain(ProfileView(state, now_ms, params))
    return rendered


class ProfileView(Mapping[str, Any]):
    """The profile as `render` gives it, computed field by field on first access.

    Rules read a few values of a profile on every event; computing the whole JSON
    each time would cost more than the rules. The view is the one definition of the
    profile's shape: `render` is this view made plain.
    """

    __slots__ = ("_cache", "_now", "_params", "_state")

    def __init__(self, state: ProfileState, now_ms: int, params: FeatureParams) -> None:
        self._state = state
        self._now = now_ms
        self._params = params
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        value = self._cache.get(name, _MISSING)  # no try/except: a miss is the common case
        if value is _MISSING:
            value = self._cache[name] = _FIELDS[name](self._state, self._now, self._params)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """One call for "is it there, and what is it" (rules read paths with it)."""
        value = self._cache.get(name, _MISSING)
        if value is _MISSING:
            field = _FIELDS.get(name)
            if field is None:
                return default
            value = self._cache[name] = field(self._state, self._now, self._params)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def __contains__(self, name: object) -> bool:
        return name in _FIELDS


def direct_reader(
    steps: tuple[str | int, ...], missing: tuple[Any, ...]
) -> Callable[[ProfileView], Any] | None:
    """A function reading ``profile.<steps>`` from a view's state directly, or None.

    Why: a rule's path through the view costs a call and an object per step, and the
    windowed counters (``counts.view['5m']``, ``category_counts.view['shoes']['1h']``),
    one affinity or one last-seen time are what behavioural rules read most. The reader
    gives exactly what walking the view gives (property-tested), ``missing[i]`` where
    step ``i`` finds no key. A reader that returns the view itself leaves the path to
    the view's general way (a case it does not shortcut).
    """
    keys = [step for step in steps if type(step) is str]
    if len(keys) < len(steps):  # an index: the view's general way
        return None
    if len(keys) == 2 and keys[0] == "rfm":
        measure, no_measure = _RFM_FIELDS.get(keys[1]), missing[1]
        if measure is None:
            return lambda view: no_measure
        return lambda view: measure(view._state, view._now)
    if len(keys) == 2 and keys[0] == "session":
        getter, no_field = _SESSION_FIELDS.get(keys[1]), missing[1]

        def session(view: ProfileView) -> Any:
            state = view._state
            if state.session is None:
                return view  # no session: the view's general way tells how that reads
            return no_field if getter is None else getter((state.session, state.sessions))

        return session
    if len(keys) == 2 and keys[0] == "affinities":
        category, no_category = keys[1], missing[1]

        def affinity(view: ProfileView) -> Any:
            found = view._state.affinities.get(category)
            if found is None:
                return no_category
            return round(decayed(found, view._now, view._params.affinity_half_life_ms), 6)

        return affinity
    seen_ms = seen_ms_reader(steps, missing[1]) if len(keys) == 2 else None
    if seen_ms is not None:

        def seen(view: ProfileView) -> Any:
            ms = seen_ms(view)
            return to_iso(ms) if type(ms) is int else ms  # else: no such event, an error

        return seen
    if len(keys) == 3 and keys[0] == "counts":
        _, kind, window = keys
        return _counter_reader(kind, None, window, missing[1:])
    if len(keys) == 4 and keys[0] == "category_counts":
        _, kind, category, window = keys
        return _counter_reader(kind, category, window, missing[1:])
    return None


def seen_ms_reader(
    steps: tuple[str | int, ...], missing: Any
) -> Callable[[ProfileView], Any] | None:
    """For ``profile.last_seen.<type>`` (or ``first_seen``): a function giving that time in
    epoch milliseconds, or `missing` when the user has no such event; None for any other
    path. Why: ``now - timestamp(profile.last_seen.purchase) > duration('30d')`` (recency)
    is a common condition, and formatting the time only for the condition to parse it
    back costs more than the rest of it."""
    if len(steps) != 2 or steps[0] not in ("first_seen", "last_seen") or type(steps[1]) is not str:
        return None
    kind, last = steps[1], steps[0] == "last_seen"

    def seen_ms(view: ProfileView) -> Any:
        found = view._state.seen.get(kind)
        if found is None:
            return missing
        return found.last if last else found.first

    return seen_ms


_KEYED_FIELDS: dict[str, Callable[[ProfileState], Mapping[str, Any]]] = {
    "counts": lambda state: state.counts,
    "category_counts": lambda state: state.category_counts,
    "affinities": lambda state: state.affinities,
    "first_seen": lambda state: state.seen,
    "last_seen": lambda state: state.seen,
    "attributes": lambda state: state.attributes,
}
"""The profile's maps whose keys are those of a map of the state (`has()` reads them)."""


def direct_has(steps: tuple[str | int, ...], name: str) -> Callable[[ProfileView], bool] | None:
    """For ``has(profile.<map>.<name>)``: a function telling it from the state, or None.

    Why: ``has(profile.counts.purchase)`` guards a read of a counter the user may not have
    yet; through the view it builds the rendered map to ask it for one key."""
    if len(steps) != 1 or type(steps[0]) is not str or steps[0] not in _KEYED_FIELDS:
        return None
    keyed = _KEYED_FIELDS[steps[0]]
    return lambda view: name in keyed(view._state)


def _counter_reader(
    kind: str, category: str | None, window: str, missing: tuple[Any, ...]
) -> Callable[[ProfileView], Any]:
    """Read one window of a counter: ``counts.<kind>`` (`category` None) or
    ``category_counts.<kind>.<category>``; ``missing`` the errors of the steps after
    the first, for a key the profile doesn't have.

    A window up to the exact horizon (``5m``, ``1h``: what behavioural rules read most)
    is counted here with `WindowCounter.count`'s two bisections: that saves the method
    call, which costs as much as the count."""
    window_ms, no_kind, no_window = WINDOWS_MS.get(window), missing[0], missing[-1]
    no_category = missing[1] if category is not None else None
    exact_ms = window_ms if window_ms is not None and window_ms <= EXACT_HORIZON_MS else 0
    total = window == "total"

    def count(view: ProfileView) -> Any:
        if category is None:
            found = view._state.counts.get(kind)
            if found is None:
                return no_kind
        else:
            by_category = view._state.category_counts.get(kind)
            if by_category is None:
                return no_kind
            found = by_category.get(category)
            if found is None:
                return no_category
        if exact_ms:
            recent, now = found.recent, view._now
            return bisect_right(recent, now) - bisect_right(recent, now - exact_ms)
        if total:
            return found.total
        return no_window if window_ms is None else found.count(window_ms, view._now)

    return count


_SIZED_FIELDS: dict[str, Callable[[ProfileState], Any]] = {
    "recent_items": lambda state: state.recent_items,
    "purchased_items": lambda state: state.purchased,
    "cart": lambda state: state.cart,
    "segments": lambda state: state.segments,
}
"""The profile's lists with one element per element of a collection of the state."""


def direct_contains(
    steps: tuple[str | int, ...], needle: str
) -> Callable[[ProfileView], bool] | None:
    """For ``'<needle>' in profile.segments``: a function telling it from the state, or
    None for any other list. Why: the commonest segment condition; through the view it
    copies the list first."""
    if steps != ("segments",):
        return None
    return lambda view: needle in view._state.segments


def direct_size(steps: tuple[str | int, ...]) -> Callable[[ProfileView], int] | None:
    """For ``size(profile.<list>)``: a function giving it from the state, or None.

    Why: ``size(profile.recent_items) > 10`` would build the list of up to 50 ids."""
    if len(steps) != 1 or type(steps[0]) is not str or steps[0] not in _SIZED_FIELDS:
        return None
    sized = _SIZED_FIELDS[steps[0]]
    return lambda view: len(sized(view._state))


class _Derived(Mapping[str, Any]):
    """A mapping with the keys of another, its values derived from that one's."""

    __slots__ = ("_source",)

    def __init__(self, source: Mapping[str, Any]) -> None:
        self._source = source

    def __getitem__(self, key: str) -> Any:
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)

    def __contains__(self, key: object) -> bool:
        return key in self._source


class _Lazy(_Derived):
    """A mapping whose values are derived from another's on access (seen times)."""

    __slots__ = ("_cache", "_convert")

    def __init__(self, source: Mapping[str, Any], convert: Callable[[Any], Any]) -> None:
        self._source = source
        self._convert = convert
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._cache[key] = self._convert(self._source[key])
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            source = self._source.get(key, _MISSING)
            if source is _MISSING:
                return default
            value = self._cache[key] = self._convert(source)
        return value


class _Windows(Mapping[str, int]):
    """One counter's counts by window name, each computed when read."""

    __slots__ = ("_counter", "_now")

    def __init__(self, counter: WindowCounter, now_ms: int) -> None:
        self._counter = counter
        self._now = now_ms

    def __getitem__(self, name: str) -> int:
        if name == "total":
            return self._counter.total
        return self._counter.count(WINDOWS_MS[name], self._now)

    def get(self, name: str, default: Any = None) -> Any:
        if name == "total":
            return self._counter.total
        window = WINDOWS_MS.get(name)
        return default if window is None else self._counter.count(window, self._now)

    def __iter__(self) -> Iterator[str]:
        return iter(_WINDOW_NAMES)

    def __len__(self) -> int:
        return len(_WINDOW_NAMES)

    def __contains__(self, name: object) -> bool:
        return name in _WINDOW_NAMES


_WINDOW_NAMES = (*WINDOWS_MS, "total")
_MISSING = object()


def plain(value: Any) -> Any:
    """A value with every lazy mapping inside made a dict (plain dicts are kept as they are)."""
    if isinstance(value, Mapping) and not isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


class _Counters(_Derived):
    """Counters by name (event type, or category), each read as its windows."""

    __slots__ = ("_now",)

    def __init__(self, source: Mapping[str, Any], now_ms: int) -> None:
        self._source = source
        self._now = now_ms

    def __getitem__(self, key: str) -> Any:
        return _Windows(self._source[key], self._now)

    def get(self, key: str, default: Any = None) -> Any:
        counter = self._source.get(key)
        return default if counter is None else _Windows(counter, self._now)


class _CountersByType(_Counters):
    """Per event type, counters by category (``category_counts``)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        return _Counters(self._source[key], self._now)

    def get(self, key: str, default: Any = None) -> Any:
        by_category = self._source.get(key)
        return default if by_category is None else _Counters(by_category, self._now)


def _counts(state: ProfileState, now: int, _: FeatureParams) -> Mapping[str, Any]:
    return _Counters(state.counts, now)


def _category_counts(state: ProfileState, now: int, _: FeatureParams) -> Mapping[str, Any]:
    return _CountersByType(state.category_counts, now)


def _rfm(state: ProfileState, now: int, _: FeatureParams) -> dict[str, Any]:
    return {name: field(state, now) for name, field in _RFM_FIELDS.items()}


_RFM_FIELDS: dict[str, Callable[[ProfileState, int], Any]] = {
    "recency_days": lambda state, now: (
        None
        if state.last_purchase_at is None
        else round(max(0, now - state.last_purchase_at) / DAY_MS, 4)
    ),
    "frequency": lambda state, now: state.purchases,
    "monetary": lambda state, now: round(state.monetary, 2),
}


class _Record(Mapping[str, Any]):
    """A fixed set of fields of one object, each computed when read."""

    __slots__ = ("_getters", "_source")

    def __init__(self, source: Any, getters: Mapping[str, Callable[[Any], Any]]) -> None:
        self._source = source
        self._getters = getters

    def __getitem__(self, name: str) -> Any:
        return self._getters[name](self._source)

    def get(self, name: str, default: Any = None) -> Any:
        getter = self._getters.get(name)
        return default if getter is None else getter(self._source)

    def __iter__(self) -> Iterator[str]:
        return iter(self._getters)

    def __len__(self) -> int:
        return len(self._getters)

    def __contains__(self, name: object) -> bool:
        return name in self._getters


_SESSION_FIELDS: dict[str, Callable[[tuple[Session, int]], Any]] = {
    "id": lambda pair: pair[0].id,
    "started_at": lambda pair: to_iso(pair[0].started_at),
    "last_event_at": lambda pair: to_iso(pair[0].last_at),
    "events": lambda pair: pair[0].events,
    "count": lambda pair: pair[1],
}


def _session(state: ProfileState, now: int, _: FeatureParams) -> Mapping[str, Any] | None:
    if state.session is None:
        return None
    return _Record((state.session, state.sessions), _SESSION_FIELDS)


_FIELDS: dict[str, Callable[[ProfileState, int, FeatureParams], Any]] = {
    "user_id": lambda s, now, p: s.user_id,
    "created_at": lambda s, now, p: to_iso(s.created_at),
    "updated_at": lambda s, now, p: to_iso(s.updated_at),
    "events": lambda s, now, p: s.events,
    "counts": _counts,
    "category_counts": _category_counts,
    "first_seen": lambda s, now, p: _Lazy(s.seen, lambda seen: to_iso(seen.first)),
    "last_seen": lambda s, now, p: _Lazy(s.seen, lambda seen: to_iso(seen.last)),
    "rfm": _rfm,
    "session": _session,
    "affinities": lambda s, now, p: _Affinities(s.affinities, now, p.affinity_half_life_ms),
    "recent_items": lambda s, now, p: [entry.item_id for entry in s.recent_items],
    "purchased_items": lambda s, now, p: [entry.item_id for entry in s.purchased],
    "cart": lambda s, now, p: [
        {"item_id": item_id, "quantity": line.quantity, "added_at": to_iso(line.added_at)}
        for item_id, line in s.cart.items()
    ],
    "segments": lambda s, now, p: list(s.segments),
    "consent": lambda s, now, p: dict(s.consent),
    "attributes": lambda s, now, p: dict(s.attributes),
    "timers": lambda s, now, p: {
        rule_id: {"due_at": to_iso(timer.due_at), "armed_by": timer.armed_by}
        for rule_id, timer in s.timers.items()
    },
}


class _Affinities(Mapping[str, float]):
    """Decayed affinity scores, highest first. A rule reads one category's score, which
    is computed alone; the ranking is made only when the whole mapping is read."""

    __slots__ = ("_half_life", "_now", "_ranked", "_source")

    def __init__(self, source: Mapping[str, Affinity], now_ms: int, half_life_ms: int) -> None:
        self._source = source
        self._now = now_ms
        self._half_life = half_life_ms
        self._ranked: list[str] | None = None

    def _score(self, affinity: Affinity) -> float:
        return round(decayed(affinity, self._now, self._half_life), 6)

    def __getitem__(self, category: str) -> float:
        return self._score(self._source[category])

    def get(self, category: str, default: Any = None) -> Any:
        affinity = self._source.get(category)
        return default if affinity is None else self._score(affinity)

    def __iter__(self) -> Iterator[str]:
        if self._ranked is None:
            scores = {category: self._score(a) for category, a in self._source.items()}
            self._ranked = sorted(scores, key=lambda category: -scores[category])
        return iter(self._ranked)

    def __len__(self) -> int:
        return len(self._source)

    def __contains__(self, category: object) -> bool:
        return category in self._source


# Last: the compact layout and its dictionaries build on this module (they import its
# structs), so they are imported once it is complete. `encode` and `decode` use them on
# every call, where an import statement cost about 2 µs each time (a package's
# ``from ... import`` goes through importlib's Python code).
from relevo.features import compact  # noqa: E402
from relevo.features import dictionaries as _dictionaries  # noqa: E402
