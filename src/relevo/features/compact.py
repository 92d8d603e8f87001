"""The compact profile layout: what Redis stores per user, about 0.45 of the MessagePack.

A typical profile is mostly millisecond timestamps: each event's time appears in its
type's counter, its category's counter, `seen`, the affinity, the recent items, the
session... 9 bytes each in MessagePack, and a compressor can do little with them (their
low bytes are noise). Here every distinct timestamp is written once, in a table
(sorted, as varint deltas: 3 bytes for events a minute apart), and the document
refers to it by index (1 byte up to 127 distinct times). Hour and day buckets are
stored relative to their counter's newest event (1 byte), and a type's counter that
its categories' counters imply (`derived`) is not written at all (`_counts`).

`layout` gives that MessagePack; `relevo.features.dictionaries` compresses it with
zstd and a dictionary (`profile.COMPACT_V2`). Documents of the first version
(`profile.COMPACT_V1`: every counter written out, deflated with `DICTIONARY_V1`) are
still read by `unpack`.

Nothing is rounded: `unlayout(layout(state)) == state` for every state (the tests
check it field by field, and that every field of `ProfileState` is known here). A
later layout takes a new first byte, and this one stays readable.
"""

from __future__ import annotations

import base64
import itertools
import operator
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Any

import msgspec

from relevo.features.profile import (
    Affinity,
    ArmedTimer,
    CartLine,
    ProfileState,
    RecentItem,
    Seen,
)
from relevo.features.sessions import Session
from relevo.features.windows import (
    DAY_MS,
    DAYS_KEPT,
    EXACT_HORIZON_MS,
    HOUR_MS,
    HOURS_KEPT,
    WindowCounter,
)

KNOWN_FIELDS = (
    "user_id",
    "created_at",
    "updated_at",
    "events",
    "counts",
    "category_counts",
    "seen",
    "purchases",
    "monetary",
    "last_purchase_at",
    "session",
    "sessions",
    "affinities",
    "recent_items",
    "cart",
    "segments",
    "consent",
    "attributes",
    "timers",
    "purchased",
)
"""The fields `pack` writes, in order. A new field of `ProfileState` must be added here
and to `pack`/`unpack` (a test compares this with the struct's fields)."""

Times = Callable[[int], int]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


# -- timestamps ---------------------------------------------------------------------------
def _varints(numbers: list[int]) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low first."""
    out = bytearray()
    append = out.append
    for number in numbers:
        while number > 0x7F:
            append((number & 0x7F) | 0x80)
            number >>= 7
        append(number)
    return bytes(out)


def _unvarints(blob: bytes) -> list[int]:
    numbers: list[int] = []
    append = numbers.append
    number, shift = 0, 0
    for byte in blob:
        if byte & 0x80:
            number |= (byte & 0x7F) << shift
            shift += 7
        else:
            append(number | (byte << shift))
            number, shift = 0, 0
    return numbers


def _table(ordered: list[int]) -> tuple[bytes, dict[int, int]]:
    """The times (sorted, distinct) as varints (the first as is, then the gaps) and each
    one's index."""
    if ordered and ordered[0] < 0:
        raise ValueError("negative timestamps are not in the compact layout")
    if len(ordered) == 1:  # a one-event profile's: no gaps to take, nothing to number
        return _varints(ordered), {ordered[0]: 0}
    gaps = list(map(operator.sub, ordered[1:], ordered))
    # zip with `count()`, not a strict zip with a range: ``strict=`` is parsed as a
    # keyword argument on each call (~1,700 instructions), and this runs per document
    return _varints(ordered[:1] + gaps), dict(zip(ordered, itertools.count()))


def _untable(blob: bytes) -> list[int]:
    return list(accumulate(_unvarints(blob)))  # the first as is, then the gaps


# -- the layout ---------------------------------------------------------------------------
def _per(size: int, times: list[int]) -> dict[int, int]:
    """`times` counted in buckets of `size` (ms)."""
    found: dict[int, int] = {}
    for at in times:
        bucket = at // size
        found[bucket] = found.get(bucket, 0) + 1
    return found


def _regroup(buckets: dict[int, int], ratio: int) -> dict[int, int]:
    """Hour buckets summed per day (``ratio=24``)."""
    found: dict[int, int] = {}
    for bucket, count in buckets.items():
        wider = bucket // ratio
        found[wider] = found.get(wider, 0) + count
    return found


def _residual(actual: dict[int, int], derived: dict[int, int], base: int) -> list[int]:
    """What `actual` has beyond `derived`, flat (base - bucket, count - derived count)."""
    found: list[int] = []
    for bucket, count in actual.items():
        implied = derived.get(bucket, 0)
        if count != implied:
            found += (base - bucket, count - implied)
    return found


def _apply(derived: dict[int, int], residual: list[int], base: int) -> dict[int, int]:
    """`derived` (changed in place: the callers' own) plus the `residual`."""
    for i in range(0, len(residual), 2):
        bucket = base - residual[i]
        derived[bucket] = derived.get(bucket, 0) + residual[i + 1]
    return derived


def _counter(counter: WindowCounter, t: Times) -> list[Any]:
    """A counter without what its other parts imply: the hour buckets hold the recent
    events (within the last hour), the day buckets the hour buckets, the total the day
    buckets; only the rest (older events, buckets dropped) is written.

    Most counters of a profile hold one recent event, whose hour and day are all their
    buckets hold (a counter of one event; of events a day or more apart): that case is
    written at half the cost of `_any_counter`'s, with the same result."""
    recent = counter.recent
    if len(recent) == 1:
        (at,) = recent
        day = at // DAY_MS
        days = counter.days
        if counter.hours == {at // HOUR_MS: 1} and days == {day: 1}:
            # (`days[day]`, not 1: what `sum` gives, should it be an equal float)
            return [[t(at)], [], [], counter.total - days[day], t(counter.newest)]
    return _any_counter(counter, t)


def _any_counter(counter: WindowCounter, t: Times) -> list[Any]:
    """`_counter` of any counter."""
    recent, hours, days = counter.recent, counter.hours, counter.days
    hour, day = counter.newest // HOUR_MS, counter.newest // DAY_MS
    by_hour = _per(HOUR_MS, recent)
    by_day = _regroup(hours, 24)
    hours_rest = [] if hours == by_hour else _residual(hours, by_hour, hour)
    days_rest = [] if days == by_day else _residual(days, by_day, day)
    if (hours_rest or days_rest) and not (
        by_hour.keys() <= hours.keys() and by_day.keys() <= days.keys()
    ):  # a bucket the others imply is missing (not a counter `WindowCounter.add` kept):
        # a residual cannot say so; the caller writes the earlier layout instead.
        raise ValueError("a counter whose buckets do not hold its recent events")
    return [
        list(map(t, recent)),
        hours_rest,
        days_rest,
        counter.total - sum(days.values()),
        t(counter.newest),
    ]


def _uncounter(packed: list[Any], times: list[int]) -> WindowCounter:
    """`_counter` undone. Every decode runs it for each counter (twenty in a shopper of
    twenty events): the common case of `_counter` (one recent event, no residual) is
    read at half the cost of `_any_uncounter`'s, with the same result."""
    recent_indexes, hours_residual, days_residual, rest, newest_index = packed
    if len(recent_indexes) == 1 and not hours_residual and not days_residual:
        at = times[recent_indexes[0]]
        return WindowCounter(
            [at], {at // HOUR_MS: 1}, {at // DAY_MS: 1}, rest + 1, times[newest_index]
        )
    return _any_uncounter(packed, times)


def _any_uncounter(packed: list[Any], times: list[int]) -> WindowCounter:
    """`_uncounter` of any counter: empty residuals are skipped and the derived buckets
    are changed in place rather than copied."""
    recent_indexes, hours_residual, days_residual, rest, newest_index = packed
    newest = times[newest_index]
    recent = list(map(times.__getitem__, recent_indexes))
    hours = _per(HOUR_MS, recent)
    if hours_residual:
        _apply(hours, hours_residual, newest // HOUR_MS)
    days = _regroup(hours, 24)
    if days_residual:
        _apply(days, days_residual, newest // DAY_MS)
    return WindowCounter(recent, hours, days, rest + sum(days.values()), newest)


def _counts(state: ProfileState, t: Times) -> list[Any]:
    """`counts` without the counters their categories imply (`derived`), in order: a
    derived one is the position of its kind in `category_counts` (one byte), any other
    is its kind then its counter. Derived is the rule: an event of one category counts
    the same in its type's counter and its category's. Written out when the counters
    differ: events without a category (search), with several (a purchase of two
    categories), categories evicted past `MAX_CATEGORIES`, a counter saturated."""
    category_counts = state.category_counts
    kinds = list(category_counts)  # a position looked up costs less than a map of them
    found: list[Any] = []
    for kind, counter in state.counts.items():
        by_category = category_counts.get(kind)
        if by_category is not None and _implied(by_category, counter):
            found.append(kinds.index(kind))
        else:
            found += (kind, _counter(counter, t))
    return found


def _implied(by_category: dict[str, WindowCounter], counter: WindowCounter) -> bool:
    """Whether `derived` of the category counters is `counter`. Of one category (the
    common case) it is a copy of that counter: compared as it is, not copied first."""
    if len(by_category) == 1:
        (only,) = by_category.values()
        return only == counter
    total = 0
    for category_counter in by_category.values():  # a loop: a generator costs more
        total += category_counter.total
    return counter.total == total and derived(by_category.values()) == counter  # cheap first


def _uncounts(
    packed: list[Any], category_counts: dict[str, dict[str, WindowCounter]], times: list[int]
) -> dict[str, WindowCounter]:
    """`_counts` undone, from the category counters already read."""
    kinds = list(category_counts)
    counts: dict[str, WindowCounter] = {}
    i = 0
    while i < len(packed):
        entry = packed[i]
        if type(entry) is int:
            kind = kinds[entry]
            counts[kind] = derived(category_counts[kind].values())
            i += 1
        else:
            counts[entry] = _uncounter(packed[i + 1], times)
            i += 2
    return counts


def derived(counters: Iterable[WindowCounter]) -> WindowCounter:
    """The counter of every event the `counters` hold, as `WindowCounter.add` would have
    kept it: the newest of all; the recent events within the exact horizon of that
    newest (a counter whose newest is older keeps its own horizon, a superset); the
    hour and day buckets still kept at that newest, summed; the totals summed. One
    counter is copied as it is (`add` keeps nothing outside its own horizons).

    Exactness does not rest on this being `add`'s rule: `_counts` writes a counter out
    whenever this differs from it, and reading computes the same.

    >>> a, b = WindowCounter(), WindowCounter()
    >>> for at in (0, HOUR_MS // 2):
    ...     a.add(at)
    >>> b.add(2 * HOUR_MS)
    >>> both = WindowCounter()
    >>> for at in (0, HOUR_MS // 2, 2 * HOUR_MS):
    ...     both.add(at)
    >>> derived([a, b]) == both
    True
    """
    counters = list(counters)
    if len(counters) == 1:  # the common case: a type seen in one category
        (only,) = counters
        return WindowCounter(  # (copies by method: no builtin's arguments parsed)
            only.recent.copy(), only.hours.copy(), only.days.copy(), only.total, only.newest
        )
    if not counters:
        return WindowCounter()
    # one loop for what `max`, `sum` and a comprehension of the recent events would give
    # (each a function called: this runs for a type seen in several categories, on
    # every encode and decode)
    newest, total, recent = counters[0].newest, 0, []
    for counter in counters:
        if counter.newest > newest:
            newest = counter.newest
        total += counter.total
        recent += counter.recent
    recent.sort()
    del recent[: bisect_right(recent, newest - EXACT_HORIZON_MS)]  # within the horizon
    first_hour = newest // HOUR_MS - (HOURS_KEPT - 1)
    first_day = newest // DAY_MS - (DAYS_KEPT - 1)
    hours: dict[int, int] = {}
    days: dict[int, int] = {}
    hour, day = hours.get, days.get
    for counter in counters:
        for bucket, count in counter.hours.items():
            if bucket >= first_hour:
                hours[bucket] = hour(bucket, 0) + count
        for bucket, count in counter.days.items():
            if bucket >= first_day:
                days[bucket] = day(bucket, 0) + count
    return WindowCounter(recent, hours, days, total, newest)


def _items(entries: list[RecentItem], t: Times) -> list[Any]:
    found: list[Any] = []
    for entry in entries:
        found += (entry.item_id, t(entry.at))
    return found


def _unitems(packed: list[Any], times: list[int]) -> list[RecentItem]:
    found: list[RecentItem] = []
    append = found.append
    for i in range(0, len(packed), 2):
        append(RecentItem(packed[i], times[packed[i + 1]]))
    return found


def _categories(state: ProfileState, t: Times) -> dict[str, dict[str, list[Any]]]:
    found: dict[str, dict[str, list[Any]]] = {}
    for kind, by_category in state.category_counts.items():
        packed = found[kind] = {}
        for category, counter in by_category.items():
            packed[category] = _counter(counter, t)
    return found


def _seen(state: ProfileState, t: Times) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for kind, seen in state.seen.items():
        found[kind] = [t(seen.first), t(seen.last)]
    return found


def _affinities(state: ProfileState, t: Times) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for category, affinity in state.affinities.items():
        found[category] = [affinity.score, t(affinity.at)]
    return found


def _layout(state: ProfileState, t: Times) -> list[Any]:
    """The document's fields. Its maps of a few entries each are filled by loops, not
    comprehensions: on Python 3.11 a comprehension is a function made and called, which
    costs more than a one-entry map's loop (~2,800 instructions against ~1,100)."""
    session = state.session
    return [
        state.user_id,
        t(state.created_at),
        t(state.updated_at),
        state.events,
        _counts(state, t),
        _categories(state, t),
        _seen(state, t),
        state.purchases,
        state.monetary,
        None if state.last_purchase_at is None else t(state.last_purchase_at),
        None
        if session is None
        else [
            session.id,
            t(session.started_at),
            t(session.last_at),
            session.events,
            True if session.client_id == session.id else session.client_id,
        ],
        state.sessions,
        _affinities(state, t),
        _items(state.recent_items, t),
        # (cart, timers and purchases are empty in most profiles: no comprehension then)
        {item_id: [line.quantity, t(line.added_at)] for item_id, line in state.cart.items()}
        if state.cart
        else {},
        state.segments,
        state.consent,
        state.attributes,
        {
            rule_id: [t(timer.due_at), timer.armed_by, t(timer.armed_at)]
            for rule_id, timer in state.timers.items()
        }
        if state.timers
        else {},
        _items(state.purchased, t) if state.purchased else [],
    ]


def _times(state: ProfileState) -> list[int]:
    """Every timestamp of the state, once per place it has in the state's MessagePack:
    what `_layout` writes (what its `t` is called with), and the type counters that
    their categories imply.

    Added through bound methods and from lists, not tuples and generators: this runs
    for every document written, a few dozen small additions each."""
    found = [state.created_at, state.updated_at]
    append, extend = found.append, found.extend
    for counter in state.counts.values():
        extend(counter.recent)
        append(counter.newest)
    for by_category in state.category_counts.values():
        for counter in by_category.values():
            extend(counter.recent)
            append(counter.newest)
    for seen in state.seen.values():
        append(seen.first)
        append(seen.last)
    if state.last_purchase_at is not None:
        append(state.last_purchase_at)
    if state.session is not None:
        append(state.session.started_at)
        append(state.session.last_at)
    for affinity in state.affinities.values():  # a few: a loop costs less than a list
        append(affinity.at)
    extend([entry.at for entry in state.recent_items])
    if state.cart:
        extend([line.added_at for line in state.cart.values()])
    for timer in state.timers.values():
        append(timer.due_at)
        append(timer.armed_at)
    if state.purchased:
        extend([entry.at for entry in state.purchased])
    return found


_INT = frozenset((int,))
_UINT64 = 1 << 32, 1 << 64
"""The timestamps MessagePack writes in 9 bytes (uint64): every epoch millisecond since
1970-02-19."""


def layout(state: ProfileState) -> bytes:
    """The state in the compact layout of `COMPACT_V2` (MessagePack, not compressed yet).

    Raises ValueError or TypeError for a state it cannot hold exactly (see `_counter`,
    `_times`): the caller writes the deflated MessagePack instead.
    """
    return measured(state)[0]


def measured(state: ProfileState) -> tuple[bytes, int]:
    """`layout`, and a floor of the length of the state's MessagePack (0 when there is
    none to tell): what lets `profile.encode` keep the compact document without
    encoding the MessagePack only to find it longer.

    The floor: each timestamp `_times` finds is a value of its own in the state's
    MessagePack, so when all are between 2**32 and 2**64 the MessagePack has at least
    9 bytes for each: an int there is a uint64 (9 bytes), and so is a float or an int
    subclass the set of distinct times hid behind an equal int (a float64: 9 bytes; a
    bool cannot be that large). `encode` checks this against the full comparison."""
    found = _times(state)
    distinct = set(found)
    if {*map(type, distinct)} != _INT:  # in C: not a generator's call per timestamp
        raise TypeError("a timestamp that is not an int")
    ordered = sorted(distinct)
    table, index = _table(ordered)
    low, high = _UINT64
    floor = 9 * len(found) if ordered and low <= ordered[0] and ordered[-1] < high else 0
    return _encoder.encode([table, _layout(state, index.__getitem__)]), floor


def unlayout(raw: bytes) -> ProfileState:
    """`layout` undone."""
    table, fields = _decoder.decode(raw)
    times = _untable(table)
    category_counts = _uncategories(fields[5], times)
    return _state(fields, times, _uncounts(fields[4], category_counts, times), category_counts)


def unpack(blob: bytes | memoryview) -> ProfileState:
    """A `COMPACT_V1` document (after its first byte): every counter written out, the
    layout deflated with `DICTIONARY_V1`. Read, never written any more."""
    inflater = zlib.decompressobj(-15, DICTIONARY_V1)
    table, fields = _decoder.decode(inflater.decompress(blob) + inflater.flush())
    times = _untable(table)
    counts = {kind: _uncounter(packed, times) for kind, packed in fields[4].items()}
    return _state(fields, times, counts, _uncategories(fields[5], times))


def _uncategories(packed: dict[str, Any], times: list[int]) -> dict[str, dict[str, WindowCounter]]:
    found: dict[str, dict[str, WindowCounter]] = {}
    for kind, by in packed.items():  # loops, not comprehensions: see `_layout`
        counters = found[kind] = {}
        for category, counter in by.items():
            counters[category] = _uncounter(counter, times)
    return found


def _unseen(packed: dict[str, list[int]], times: list[int]) -> dict[str, Seen]:
    found: dict[str, Seen] = {}
    for kind, (first, last) in packed.items():
        found[kind] = Seen(times[first], times[last])
    return found


def _unaffinities(packed: dict[str, list[Any]], times: list[int]) -> dict[str, Affinity]:
    found: dict[str, Affinity] = {}
    for category, (score, at) in packed.items():
        found[category] = Affinity(score, times[at])
    return found


def _state(
    fields: list[Any],
    times: list[int],
    counts: dict[str, WindowCounter],
    category_counts: dict[str, dict[str, WindowCounter]],
) -> ProfileState:
    """The state from the fields `_layout` wrote, its counters already read.

    Its arguments are positional, in the order of `KNOWN_FIELDS` (the struct's): by
    keyword, msgspec matches each of the twenty names, ~9,000 instructions a decode."""
    (user_id, created, updated, events, _, _, seen, purchases, monetary) = fields[:9]
    (last_purchase, session, sessions, affinities, recent, cart) = fields[9:15]
    (segments, consent, attributes, timers, purchased) = fields[15:]
    return ProfileState(
        user_id,
        times[created],
        times[updated],
        events,
        counts,
        category_counts,
        _unseen(seen, times),
        purchases,
        monetary,
        None if last_purchase is None else times[last_purchase],
        None
        if session is None
        else Session(  # id, started_at, last_at, events, client_id
            session[0],
            times[session[1]],
            times[session[2]],
            session[3],
            session[0] if session[4] is True else session[4],
        ),
        sessions,
        _unaffinities(affinities, times),
        _unitems(recent, times),
        # (empty in most profiles: no comprehension made then)
        {item_id: CartLine(quantity, times[at]) for item_id, (quantity, at) in cart.items()}
        if cart
        else {},
        segments,
        consent,
        attributes,
        {
            rule_id: ArmedTimer(times[due], armed_by, times[armed])
            for rule_id, (due, armed_by, armed) in timers.items()
        }
        if timers
        else {},
        _unitems(purchased, times) if purchased else [],
    )


DICTIONARY_V1 = base64.b64decode(
    """
OZWRCJCSGAIACKJjMJWRC5CQAAuCpHZpZXeSAA6lY2xpY2uSAwsAywAAAAAAAAAAwJWudXNlci05MDAwOTUtczEI
DgfDAoWiYzCSy0ACUkNL+5JkC6JjOJLLP///IAU5WUgEomM5kstAFYmiFxWIsQ6jYzEwkss/8AAAAAAAAAeiYzWS
yz///Nf7B8NoDdwAHKRwMTc3DqRwMTczDaNwODEMo3A5NgujcDY5CqRwMTM3CaRwMTY1CKNwNTgHo3AzMwajcDg0
BaRwMjM2BKNwOTMDo3AyMAGkcDIxNgCAkICAgJCSxCjCnqHRhDTaiAHukAT1f/XqsiGfmwnHywGbpRTl1ccN/JEB
vsYWhK4V3AAUq3VzZXItOTAwMDk2AAsNhKR2aWV3lZMICguSCASSAgMAC7ByZW1vdmVfZnJvbV9jYXJ0lZEBkJAA
AaZzZWFyY2iVkQKQkAACq2FkZF90b19jYXJ0lZEJkJAACYOkdmlld4OiYzKVkQCQkAAAomMwlZELkggCkgIBAAui
YzOVkggKkggCkgIBAAqwcmVtb3ZlX2Zyb21fY2FydIGiYziVkQGQkAABq2FkZF90b19jYXJ0gaJjMJWRCZCQAAmE
pHZpZXeSAAuwcmVtb3ZlX2Zyb21fY2FydJIBAaZzZWFyY2iSAgKrYWRkX3RvX2NhcnSSCQkAywAAAAAAAAAAwJWu
dXNlci05MDAwOTYtczIICwTDA4OiYzKSyz/wAAAAAAAAAKJjMJLLQBtKknM3hDsLomMzkstAE06MJpaefgrcABSk
cDE5MgujcDI3CqRwMTgwCaRwMTExCKNwNjMHo3A3MgajcDg3BaRwMTQ0BKNwNjADpHAxOTQAgaRwMTgwkgEJkICA
gJCSxCKAsYiRiTTVngXzMY0NuXGVpw3Prc0PouILqqgB6IkL+uUC3AAUq3VzZXItOTAwMDk3AAoLg6R2aWV3lZQG
CAkKkgkDkAAKpWNsaWNrlZMCAwSQkAAEqHB1cmNoYXNllZEHkJAAB4Okdmlld4SiYzWVkQaSCQGQAAajYzExlZIB
BZCQAAWiYzaVkQiQkAAIo2MxMJWSCQqQkAAKpWNsaWNrg6NjMTGVkQSQkAAEo2MxMJWRA5CQAAOiYzOVkQKQkAAC
qHB1cmNoYXNlgaNjMTCVkQeQkAAHg6R2aWV3kgAKpWNsaWNrkgIEqHB1cmNoYXNlkgcHActASePXCj1wpAeVrnVz
ZXItOTAwMDk3LXMxBgoFwwKFomM1kss//2e/t6KP1AajYzExkstAD/5pgEpZfAWjYzEwkstAIdjJmUmN/QqiYzOS
y0AAAAAAAAAAAqJjNpLLP/AAAAAAAAAI3AAWo3A5NAqjcDcwCaRwMTM4CKRwMTU0B6RwMTg1BqNwODMFpHAyMzkE
pHAxNjYDpHAxNzECo3A1OQGkcDE5NwCAkICAgJKkcDE1NAeSxDvjqaXchjT8zQGcKfbHBJYzo+ESuevhmgHK0QKS
jwHwoAa+jAbG0QOh4vGUAtuHF+j0CrDsCY+ZBtmzCtwAFKt1c2VyLTkwMDA5OAAREoKkdmlld5WVDA0OEBGQlAoE
BgUAEaVjbGlja5WRD5CUCgIGAQAPgqR2aWV3haJjN5WREZCSCgIAEaNjMTGVkRCQlAoBBgIAEKJjNZWRApCQAAKi
YzSVkgwNkJIGAwANomM5lZEOkJAADqVjbGlja4KiYzaVkQGQkAABo2MxMZWRD5CUCgEGAQAPgqR2aWV3kgARpWNs
aWNrkgEPAMsAAAAAAAAAAMCVrnVzZXItOTAwMDk4LXMyDBEGwwOGomM3kss/+1HALAoefhGiYzaSy0AAAAAAAAAA
AaNjMTGSy0AYdWpXbiToEKJjNZLLP/AAAAAAAAAComM0kstADFNGv5RdgQ2iYzmSyz/wAAAAAAAADtwAJKNwNDMR
pHAxMDcQo3AzNQ+kcDE2NQ6icDQNpHAxMDAMpHAyMDgLpHAxOTEKpHAxNDgJpHAyMzkIo3AxMQejcDI4BqRwMTYz
BaRwMTQzBKRwMTU1A6RwMjA5AqNwMTgBo3AzMQCAkICAgJCSxCrfnoagiTSk9wLD2AH13ATcX7S8AoTcAeixB5I+
93Kg5wHC2Aq3oAHE+wzcABSrdXNlci05MDAwOTkADQ6EpHZpZXeVmAAGBwgJCgsMkJAADKhwdXJjaGFzZZWSAg2Q
kAANpWNsaWNrlZIBBJCQAASrYWRkX3RvX2NhcnSVkgMFkJAABYSkdmlld4OiYzCVkgALkJAAC6JjMZWVBgcICgyQ
kAAMomMzlZEJkJAACahwdXJjaGFzZYKiYzGVkQKQkAAComMwlZENkJAADaVjbGlja4GiYzCVkgEEkJAABKthZGRf
dG9fY2FydIKjYzEwlZEFkJAABaJjMZWRA5CQAAOEpHZpZXeSAAyocHVyY2hhc2WSAg2lY2xpY2uSAQSrYWRkX3Rv
X2NhcnSSAwUCy0Bbf1wo9cKPDZWudXNlci05MDAwOTktczAADQ7DAYSiYzCSy0Al/bjSZCtODaJjMZLLQCn9Cyzf
RuYMo2MxMJLLQAgAAAAAAAAFomMzkss/8AAAAAAAAAncABikcDE0NA2jcDM3DKNwMzYLo3A2MwmkcDE1NwikcDE5
MwekcDEwOQajcDIyBaRwMTIwBKRwMjE3A6NwODUCpHAyMjgAgqNwMjKSAQWkcDIxN5IBA5CAgICUpHAxNDQNo3A4
NQI=
"""
)
"""The preset dictionary of `COMPACT_V1` documents: never change it (documents written
with it would no longer read); a better one is a new version. Made from the layout of
100 synthetic shoppers (10-20 views, clicks, carts and purchases each, `bench.memory`'s
histories) with neutral item and category names (``p17``, ``c3``), so it holds the
event types and the layout's recurring bytes, not any catalog's names: the last
2,048 bytes of their concatenated documents (deflate looks back at most 32 KB)."""
