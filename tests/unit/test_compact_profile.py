"""The compact profile layout (what Redis stores): exact, smaller, and older layouts read.

Exact: a profile folded from many events of every kind (late ones, several sessions,
carts, purchases, timers, attributes) decodes to an equal state and renders the same.
Smaller: on the memory benchmark's synthetic shoppers, about 2/3 of the deflated
MessagePack it replaces. Older layouts (deflated and plain MessagePack) still decode.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import statistics
import zlib
from typing import Any

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.features import compact, dictionaries
from relevo.features import site_dictionaries as site_dictionaries_module
from relevo.features.dictionaries import Dictionaries
from relevo.features.profile import (
    COMPACT_V1,
    COMPACT_V2,
    DEFLATED,
    MAX_CATEGORIES,
    ArmedTimer,
    FeatureParams,
    ProfileState,
    apply_event,
    decode,
    encode,
    render,
)
from relevo.features.windows import DAY_MS, HOUR_MS, WindowCounter

T0 = 1_767_225_600_000
PARAMS = FeatureParams()
KINDS = ["view", "view", "view", "click", "add_to_cart", "remove_from_cart", "purchase"]


def shopper(seed: int, events: int = 60) -> ProfileState:
    """Events over 40 days, some late, in a few categories, with carts and purchases."""
    rng = random.Random(seed)
    state = ProfileState(user_id=f"u{seed}")
    at = T0
    for number in range(events):
        at += rng.choice([1, 500, 60_000, HOUR_MS, 5 * HOUR_MS, 2 * DAY_MS])
        late = rng.random() < 0.1
        kind = rng.choice(KINDS)
        record: dict[str, Any] = {
            "event_id": f"e{number}",
            "type": kind,
            "timestamp": at - (rng.randrange(3 * HOUR_MS) if late else 0),
            "session_id": f"s{number // 7}" if rng.random() < 0.8 else None,
            "category": rng.choice(["shoes", "bags", "hats"]),
            "item_id": f"sku-{rng.randrange(40)}",
        }
        if kind == "purchase":
            record["value"] = round(rng.uniform(5, 200), 2)
            if rng.random() < 0.5:
                record["items"] = [
                    {"item_id": "sku-1", "quantity": 2, "price": 9.5, "category": "bags"}
                ]
        apply_event(state, record, PARAMS)
    state.attributes = {"tier": "gold", "phone": 33_612_345_678_901, "tags": ["a", 1.5]}
    state.segments = ["vip"]
    state.consent = {"personalization": True}
    state.timers = {"abandoned": ArmedTimer(at + HOUR_MS, "e3", at)}
    return state


def test_the_layout_knows_every_field_of_the_profile() -> None:
    """A new field of `ProfileState` must be written by `compact.pack` too."""
    assert ProfileState.__struct_fields__ == compact.KNOWN_FIELDS


@pytest.mark.parametrize("seed", range(40))
def test_profiles_round_trip_exactly(seed: int) -> None:
    state = shopper(seed, events=seed * 5)
    blob = encode(state)
    assert blob[0] == COMPACT_V2 or blob == msgspec.msgpack.encode(state)  # plain if smaller
    assert seed == 0 or blob[0] == COMPACT_V2
    assert decode(blob) == state
    assert msgspec.msgpack.encode(decode(blob)) is not None
    now = T0 + 50 * DAY_MS
    assert render(decode(blob), now, PARAMS) == render(state, now, PARAMS)


def test_a_counter_the_layout_cannot_hold_is_written_in_the_earlier_layout() -> None:
    """Buckets missing what the recent events imply (not kept by `WindowCounter.add`):
    the residuals cannot say so, so the document is deflated MessagePack, still exact."""
    state = shopper(1)
    odd = WindowCounter(recent=[T0], hours={}, days={T0 // DAY_MS: 1}, total=1, newest=T0)
    state.counts["odd"] = odd
    blob = encode(state)
    assert blob[0] == DEFLATED
    assert decode(blob) == state


def test_documents_of_earlier_layouts_still_decode() -> None:
    state = shopper(2)
    plain = msgspec.msgpack.encode(state)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = bytes((DEFLATED,)) + deflater.compress(plain) + deflater.flush()
    assert decode(plain) == state
    assert decode(deflated) == state


V1_DOCUMENT = base64.b64decode(
    """
Apt0xPDL5Vfbths3fNgU1HDxFEfD3duMIMwI4vRevxLwecY9xkag5IMrzEAEkgLG+qJSYwZuHmhkT2QFVi+g
OosVtdID5ykstSX3hEksTAzcsFQALFWnsDAyMTFwQWN9SUZiSTG0ilxanJGfWgyNmSVJienF0PhCqQKhEtgt
bIKaB7IWWM3CTASnBmhZDtEPcglICRdMCbjoh+oGF9+wpIFiO9DzmPUtE9R7k9i4kAuNRcWGnNzMhzkgfgTG
PauqzLyzBcrsYBcA+fJbHG+7sPNCnQAUYEv7vsy3RgJYZAssLc4u1TXkWgaijM04wbSRMQeENmeH0KZsEHkD
VghtzAymDc0YG6EMoHsnLi7LLGhcX5BaVJyfl5iTWZVYkpmfd7h5SUlmatGS9PyclKUFGfl5qecZGOQm/n4z
x3RJCch5CxNP2/+AeKVxZWJSYl4KUE3KZJ5FqcbcEwA=
"""
)
"""`encode(shopper(3, events=12))` as the first compact layout wrote it (before V2)."""


def test_documents_of_the_first_compact_layout_still_decode() -> None:
    assert V1_DOCUMENT[0] == COMPACT_V1
    state = decode(V1_DOCUMENT)
    assert state == shopper(3, events=12)
    assert decode(encode(state)) == state  # and are rewritten in the current one


def test_the_dictionaries_never_change() -> None:
    """Documents written with them must stay readable: a new dictionary is a new version
    (`DICTIONARY_V1` of `COMPACT_V1`, the built-in zstd dictionary 0 of `COMPACT_V2`)."""
    digest = hashlib.sha256(compact.DICTIONARY_V1).hexdigest()
    assert digest == "abec10d8cad5db4f16cadfc8dcaf0cd5970e5466f4ed6cdac1b5443a9089ff7a"
    digest = hashlib.sha256(dictionaries.builtin_data()).hexdigest()
    assert digest == "b0a0dc6e505d73240af652b65f9184694417ab42309d41bbcf665b2d5a469ca0"


def test_the_compact_layout_is_smaller_than_deflated_messagepack() -> None:
    sizes = []
    for seed in range(100, 160):
        state = shopper(seed, events=15)
        raw = msgspec.msgpack.encode(state)
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        before = 1 + len(deflater.compress(raw) + deflater.flush())
        sizes.append(len(encode(state)) / before)
    assert statistics.fmean(sizes) < 0.8, statistics.fmean(sizes)


def test_varint_tables_round_trip() -> None:
    times = {0, 1, 127, 128, T0, T0 + 1, T0 + 2**40}
    table, index = compact._table(sorted(times))
    assert compact._untable(table) == sorted(times)
    assert [index[at] for at in sorted(times)] == list(range(len(times)))


@settings(max_examples=200)
@given(
    offsets=st.lists(st.integers(-40 * DAY_MS, 3 * DAY_MS), min_size=1, max_size=80),
    kinds=st.lists(st.sampled_from(["view", "click", "purchase"]), min_size=1, max_size=80),
)
def test_counters_of_any_history_round_trip_exactly(offsets: list[int], kinds: list[str]) -> None:
    """Whatever order and spread of events (late ones, gaps of days, bursts in one hour)
    `WindowCounter.add` kept, the compact layout gives back equal counters."""
    state = ProfileState(user_id="u")
    for offset, kind in zip(offsets, kinds, strict=False):
        state.counts.setdefault(kind, WindowCounter()).add(T0 + offset)
        state.category_counts.setdefault(kind, {}).setdefault("c", WindowCounter()).add(T0)
    assert compact.unlayout(compact.layout(state)) == state


@functools.cache
def site_dictionaries() -> Dictionaries:
    """Dictionary 0 and a trained one (7), active, as a store's process holds them."""
    layouts = [compact.layout(shopper(seed, events=20)) for seed in range(1_000, 1_400)]
    known = Dictionaries()
    known.add(7, zstandard.train_dictionary(4_096, layouts, level=dictionaries.LEVEL).as_bytes())
    known.activate(7)
    return known


EVENT = st.fixed_dictionaries(
    {
        "offset": st.integers(-3 * HOUR_MS, 40 * DAY_MS),
        "type": st.sampled_from(["view", "click", "purchase", "search", "add_to_cart"]),
        "categories": st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3),
        "item": st.integers(0, 30),
    }
)


def _folded(events: list[dict[str, Any]], start: int = T0) -> ProfileState:
    """Events of any type with 0-3 categories (search: none; purchases: several)."""
    state = ProfileState(user_id="u")
    at = start
    for number, event in enumerate(events):
        at += max(event["offset"], 0)
        record: dict[str, Any] = {
            "event_id": f"e{number}",
            "type": event["type"],
            "timestamp": at + min(event["offset"], 0),  # some late
            "session_id": "s",
        }
        categories = event["categories"]
        if event["type"] != "search":
            record["item_id"] = f"sku-{event['item']}"
            if categories:
                record["category"] = categories[0]
            record["items"] = [
                {"item_id": f"sku-{event['item'] + k}", "quantity": 1, "category": category}
                for k, category in enumerate(categories[1:], start=1)
            ]
        apply_event(state, record, PARAMS)
    return state


@settings(max_examples=300)
@given(events=st.lists(EVENT, max_size=60))
def test_v2_documents_round_trip_exactly_with_the_built_in_and_a_site_dictionary(
    events: list[dict[str, Any]],
) -> None:
    state = _folded(events)
    for known in (None, site_dictionaries()):
        blob = encode(state, dictionaries=known)
        if blob[0] == COMPACT_V2:
            assert blob[1] == (0 if known is None else 7)
        assert decode(blob, known) == state
    assert compact.unlayout(compact.layout(state)) == state


@settings(max_examples=200)
@given(
    offsets=st.lists(st.integers(-2 * DAY_MS, 3 * DAY_MS), min_size=1, max_size=80),
    categories=st.lists(st.sampled_from("abcde"), min_size=1, max_size=80),
)
def test_derived_counts_what_the_type_counter_kept(
    offsets: list[int], categories: list[str]
) -> None:
    """Events of one category each: the type's counter is `compact.derived` from its
    categories' (late events, bursts, buckets dropped at different newest times)."""
    counter, by_category = WindowCounter(), {}
    at = T0
    for offset, category in zip(offsets, categories, strict=False):
        at += max(offset, 0)
        counter.add(at + min(offset, 0))
        by_category.setdefault(category, WindowCounter()).add(at + min(offset, 0))
    assert compact.derived(by_category.values()) == counter


def test_type_counters_are_written_only_when_their_categories_do_not_imply_them() -> None:
    state = _folded(
        [
            {"offset": HOUR_MS, "type": "view", "categories": ["a"], "item": 1},
            {"offset": DAY_MS, "type": "view", "categories": ["b"], "item": 2},
            {"offset": 1, "type": "search", "categories": [], "item": 0},
            {"offset": 1, "type": "purchase", "categories": ["a", "b"], "item": 3},
        ]
    )
    _, fields = msgspec.msgpack.decode(compact.layout(state))
    kinds = list(state.category_counts)
    assert fields[4][0] == kinds.index("view")  # derived: its position alone
    assert fields[4][1:3:2] == ["search"]
    assert fields[4][3] == "purchase"
    assert compact.unlayout(compact.layout(state)) == state


def test_a_type_counter_of_an_evicted_category_is_written_out() -> None:
    state = ProfileState(user_id="u")
    for number in range(MAX_CATEGORIES + 3):
        record = {"event_id": f"e{number}", "type": "view", "timestamp": T0 + number}
        apply_event(state, record | {"category": f"c{number}", "item_id": "x"}, PARAMS)
    assert len(state.category_counts["view"]) == MAX_CATEGORIES
    _, fields = msgspec.msgpack.decode(compact.layout(state))
    assert fields[4][0] == "view"
    assert decode(encode(state)) == state


def test_the_built_in_dictionary_and_a_site_one_shrink_shoppers() -> None:
    """The built-in dictionary beats V1's deflate; a site's own beats the built-in."""
    states = [shopper(seed, events=15) for seed in range(2_000, 2_060)]
    v2 = statistics.fmean(len(encode(state)) for state in states)
    site = statistics.fmean(
        len(encode(state, dictionaries=site_dictionaries())) for state in states
    )
    assert site < v2, (site, v2)


def test_dictionaries_are_trained_on_profiles_without_what_identifies_a_person() -> None:
    state = shopper(5)
    state.attributes = {"email": "ann@example.com"}
    kept = site_dictionaries_module.impersonal(state)
    raw = compact.layout(kept)
    for personal in (b"u5", b"ann@example.com", b"e3"):
        assert personal not in raw
    assert state.user_id == "u5"  # the stored state is left as it was
    assert kept.recent_items == state.recent_items
    assert kept.counts == state.counts


# -- the fast paths write what the general code wrote --------------------------------------
def _documents_states() -> list[ProfileState]:
    """Seeded states of every shape `encode` meets: new users' one-event profiles, longer
    shoppers, events of 0-3 categories, a search alone, tiny states (plain MessagePack),
    small timestamps (no floor), a counter the layout cannot hold (deflated)."""
    rng = random.Random(17)
    states = [shopper(seed, events=events) for seed in range(30) for events in (1, 2, 15, 60)]
    for _ in range(120):
        events = [
            {
                "offset": rng.randrange(-3 * HOUR_MS, 40 * DAY_MS) // rng.choice([1, 1_000]),
                "type": rng.choice(["view", "click", "purchase", "search", "add_to_cart"]),
                "categories": rng.sample("abcd", rng.randrange(4)),
                "item": rng.randrange(30),
            }
            for _ in range(rng.choice([1, 1, 2, 5, 20]))
        ]
        states.append(_folded(events))
    states += [ProfileState(user_id="u"), ProfileState(user_id="u", consent={"ads": True})]
    search = ProfileState(user_id="u")
    apply_event(search, {"event_id": "e", "type": "search", "timestamp": T0}, PARAMS)
    small = ProfileState(user_id="u")
    for at in (5, 7, 100_000):
        apply_event(
            small, {"event_id": "e", "type": "view", "timestamp": at, "item_id": "x"}, PARAMS
        )
    odd = shopper(1)
    odd.counts["odd"] = WindowCounter(recent=[T0], days={T0 // DAY_MS: 1}, total=1, newest=T0)
    return [*states, search, small, odd]


def test_layouts_are_the_bytes_the_earlier_code_wrote() -> None:
    """The digest of the layouts of `_documents_states` as the code before its shortcuts
    (`_counter`'s one-event case, loops for comprehensions, `derived`'s loop) wrote them:
    a change of one byte is a new layout, not a speed-up. (The documents: next test.)"""
    states = _documents_states()
    layouts = hashlib.sha256(
        b"".join(compact.layout(state) + b"|" for state in states if state is not states[-1])
    )
    assert layouts.hexdigest() == LAYOUTS_DIGEST


LAYOUTS_DIGEST = "810d369255d6170f5325554bc7ff5e77404fc2b8681c1b3e51365b010d207255"


def test_documents_are_chosen_as_the_earlier_code_chose_them() -> None:
    """Compact, deflated or plain: `encode` (its floor) keeps what the comparison with the
    MessagePack encoded each time kept."""
    states = _documents_states()
    assert {encode(state)[0] for state in states} == {COMPACT_V2, DEFLATED, 0xDC}  # plain
    for state in states:
        assert encode(state) == _encoded_as_before(state)


def _encoded_as_before(state: ProfileState) -> bytes:
    """`encode`'s rule as it was written before the floor: the MessagePack always
    encoded, and compared."""
    raw = msgspec.msgpack.encode(state)
    if len(raw) < 96:
        return raw
    try:
        layout = compact.layout(state)
    except (ValueError, TypeError):
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        packed = bytes((DEFLATED,)) + deflater.compress(raw) + deflater.flush()
    else:
        packed = bytes((COMPACT_V2,)) + dictionaries.builtin_only().compress(layout)
    return packed if len(packed) < len(raw) else raw


@settings(max_examples=300)
@given(
    events=st.lists(EVENT, max_size=12),
    start=st.sampled_from([T0, 0, 2**32 - DAY_MS, 2**32]),
    user=st.text(max_size=150),
)
def test_encode_chooses_as_it_did_when_it_encoded_the_messagepack_each_time(
    events: list[dict[str, Any]], start: int, user: str
) -> None:
    """The floor (`compact.measured`) is never above the MessagePack's length, so `encode`
    keeps the document the full comparison kept: tiny states plain, timestamps below
    2**32 (no floor; some of them only), long user ids."""
    state = _folded(events, start)
    state.user_id = user
    try:
        floor = compact.measured(state)[1]
    except ValueError:  # negative timestamps (start 0, late events): deflated
        floor = 0
    assert floor <= len(msgspec.msgpack.encode(state))
    assert encode(state) == _encoded_as_before(state)


COUNTER = st.builds(
    WindowCounter,
    recent=st.lists(st.integers(T0 - 2 * DAY_MS, T0 + 2 * DAY_MS), max_size=3),
    hours=st.dictionaries(
        st.integers(T0 // HOUR_MS - 30, T0 // HOUR_MS + 50), st.integers(-1, 3), max_size=3
    ),
    days=st.dictionaries(
        st.integers(T0 // DAY_MS - 2, T0 // DAY_MS + 2), st.integers(-1, 3), max_size=3
    ),
    total=st.integers(-2, 10),
    newest=st.integers(T0 - 2 * DAY_MS, T0 + 2 * DAY_MS),
)
"""Counters of any content, most not kept by `WindowCounter.add` (buckets that disagree
with the recent events, totals below them, unsorted recent events)."""


def _kept(offsets: list[int]) -> WindowCounter:
    counter = WindowCounter()
    for offset in offsets:
        counter.add(T0 + offset)
    return counter


KEPT_COUNTER = st.lists(st.integers(-2 * DAY_MS, 2 * DAY_MS), max_size=6).map(_kept)


@settings(max_examples=500)
@given(counter=st.one_of(COUNTER, KEPT_COUNTER))
def test_the_one_event_counter_is_written_and_read_as_any_counter_is(
    counter: WindowCounter,
) -> None:
    """`_counter`'s and `_uncounter`'s shortcut (one recent event whose hour and day are
    all the buckets) gives what the general code gives, for counters of any content."""
    times = sorted({*counter.recent, counter.newest})
    index = {at: position for position, at in enumerate(times)}
    try:
        expected = compact._any_counter(counter, index.__getitem__)
    except ValueError:
        with pytest.raises(ValueError, match="do not hold its recent events"):
            compact._counter(counter, index.__getitem__)
        return
    packed = compact._counter(counter, index.__getitem__)
    assert packed == expected
    assert compact._uncounter(packed, times) == compact._any_uncounter(packed, times)


@settings(max_examples=300)
@given(counter=KEPT_COUNTER)
def test_counters_kept_by_add_round_trip_exactly(counter: WindowCounter) -> None:
    times = sorted({*counter.recent, counter.newest})
    index = {at: position for position, at in enumerate(times)}
    assert compact._uncounter(compact._counter(counter, index.__getitem__), times) == counter


@settings(max_examples=300)
@given(counters=st.lists(st.one_of(COUNTER, KEPT_COUNTER), max_size=4))
def test_derived_is_what_it_was_written_as_with_max_sum_and_a_comprehension(
    counters: list[WindowCounter],
) -> None:
    """`derived`'s loop against the definition it replaced, on counters of any content."""
    found = compact.derived(counters)
    if len(counters) < 2:
        assert found == (counters[0] if counters else WindowCounter())
        return
    newest = max(counter.newest for counter in counters)
    cut = newest - HOUR_MS
    first_hour, first_day = newest // HOUR_MS - 24, newest // DAY_MS - 30
    hours: dict[int, int] = {}
    days: dict[int, int] = {}
    for counter in counters:
        for bucket, count in counter.hours.items():
            if bucket >= first_hour:
                hours[bucket] = hours.get(bucket, 0) + count
        for bucket, count in counter.days.items():
            if bucket >= first_day:
                days[bucket] = days.get(bucket, 0) + count
    recent = sorted([at for counter in counters for at in counter.recent if at > cut])
    expected = WindowCounter(recent, hours, days, sum(c.total for c in counters), newest)
    assert found == expected
    assert list(found.hours.items()) == list(expected.hours.items())  # the same order
    assert list(found.days.items()) == list(expected.days.items())


@pytest.mark.parametrize("number", [127, 128, 300, 20_000])
def test_dictionaries_numbered_past_one_byte_write_and_read(number: int) -> None:
    """A store that retrains every day passes dictionary 127 within months: from 128 the
    number takes a varint of two bytes or more, in the document and in `unknown`."""
    state = shopper(5, events=20)
    known = Dictionaries()
    known.add(number, dictionaries.builtin_data())
    known.activate(number)
    blob = encode(state, dictionaries=known)
    assert blob[0] == COMPACT_V2
    assert decode(blob, known) == state
    fresh = Dictionaries()
    assert fresh.unknown([blob, None]) == {number}
    with pytest.raises(dictionaries.MissingDictionary, match=f"dictionary {number},"):
        decode(blob, fresh)
