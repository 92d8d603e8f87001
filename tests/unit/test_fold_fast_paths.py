"""The fold's fast paths against the straightforward definitions they replaced.

`WindowCounter.add`, `counted_once` and `_remember` are written for few instructions
per event; the stored profile must not change by a byte for it. Each is compared here
with its plain definition (as it was written before) on random event sequences, late
events and bursts included, by the MessagePack the state encodes to (which also sees
the order of dict keys).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from unittest.mock import patch

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.features import windows
from relevo.features.profile import (
    MAX_RECENT_ITEMS,
    FeatureParams,
    ProfileState,
    RecentItem,
    _remember,
    apply_event,
)
from relevo.features.windows import DAY_MS, HOUR_MS, WindowCounter, counted_once

START = 1_767_225_600_000

# Mostly in time order, as live traffic is, with long pauses and late events, some
# about as late as the oldest hour or day a counter keeps.
steps = st.one_of(
    st.integers(0, 10 * 60_000),
    st.integers(-2 * HOUR_MS, 0),
    st.integers(HOUR_MS, 3 * DAY_MS),
    st.integers(-26 * HOUR_MS, -24 * HOUR_MS),
    st.integers(-32 * DAY_MS, -30 * DAY_MS),
    st.integers(-40 * DAY_MS, 40 * DAY_MS),
)


def times(deltas: list[int], start: int = START) -> list[int]:
    found, ts = [], start
    for delta in deltas:
        ts += delta
        found.append(ts)
    return found


def add_plainly(counter: WindowCounter, ts_ms: int) -> None:
    """`WindowCounter.add` as first written: one path for every event."""
    counter.total += 1
    previous = counter.newest
    counter.newest = newest = max(ts_ms, previous)
    recent = counter.recent
    if recent and ts_ms < recent[-1]:
        insort(recent, ts_ms)
    else:
        recent.append(ts_ms)
    horizon = bisect_right(recent, newest - windows.EXACT_HORIZON_MS)
    overflow = len(recent) - windows.MAX_EXACT
    if horizon or overflow > 0:
        del recent[: max(horizon, overflow)]
    for buckets, size, kept in ((counter.hours, HOUR_MS, 25), (counter.days, DAY_MS, 31)):
        oldest_kept = newest // size - (kept - 1)
        if ts_ms // size >= oldest_kept:
            buckets[ts_ms // size] = buckets.get(ts_ms // size, 0) + 1
        if newest // size != previous // size:
            for stale in [b for b in buckets if b < oldest_kept]:
                del buckets[stale]


def remember_plainly(recent: list[RecentItem], item_ids: list[str], ts: int, most: int) -> None:
    """`_remember` plainly: look for the item, then for its place, in every call."""
    for item_id in item_ids:
        known = next((i for i, entry in enumerate(recent) if entry.item_id == item_id), None)
        if known is not None:
            if recent[known].at >= ts:
                continue
            del recent[known]
        position = next((i for i, entry in enumerate(recent) if entry.at <= ts), len(recent))
        recent.insert(position, RecentItem(item_id, ts))
    del recent[most:]


@given(deltas=st.lists(steps, max_size=200), cap=st.sampled_from([3, 40, windows.MAX_EXACT]))
@settings(max_examples=400, deadline=None)
def test_add_keeps_what_the_plain_definition_keeps(deltas: list[int], cap: int) -> None:
    fast, plain = WindowCounter(), WindowCounter()
    with patch.object(windows, "MAX_EXACT", cap):  # small caps: the overflow path too
        for ts in times(deltas):
            fast.add(ts)
            add_plainly(plain, ts)
            assert msgspec.msgpack.encode(fast) == msgspec.msgpack.encode(plain)


@given(ts=st.one_of(st.integers(-3 * DAY_MS, 3 * DAY_MS), st.integers(START, START + DAY_MS)))
def test_counted_once_is_a_new_counter_after_one_add(ts: int) -> None:
    plain = WindowCounter()
    add_plainly(plain, ts)
    assert msgspec.msgpack.encode(counted_once(ts)) == msgspec.msgpack.encode(plain)


@given(
    visits=st.lists(
        st.tuples(st.lists(st.sampled_from("abcdefgh"), max_size=3), steps), max_size=80
    ),
    most=st.sampled_from([1, 4, MAX_RECENT_ITEMS]),
)
@settings(max_examples=300, deadline=None)
def test_remember_keeps_what_the_plain_definition_keeps(
    visits: list[tuple[list[str], int]], most: int
) -> None:
    fast: list[RecentItem] = []
    plain: list[RecentItem] = []
    for (item_ids, _), ts in zip(visits, times([delta for _, delta in visits]), strict=True):
        _remember(fast, [(item_id, 1, None) for item_id in item_ids], ts, most)
        remember_plainly(plain, item_ids, ts, most)
        assert fast == plain


@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["view", "click", "add_to_cart", "purchase", "search"]),
            st.sampled_from([None, "shoes", "books", "toys"]),
            steps,
        ),
        max_size=60,
    )
)
@settings(max_examples=200, deadline=None)
def test_the_fold_counts_as_plain_counters_count(events: list[tuple[str, str | None, int]]) -> None:
    """Every counter of a folded profile is what plain `add` calls give for its events."""
    state = ProfileState(user_id="u1")
    expected: dict[tuple[str, str | None], WindowCounter] = {}
    for (kind, category, _), ts in zip(events, times([e[2] for e in events]), strict=True):
        record = {"type": kind, "timestamp": ts, "item_id": "sku-1"}
        if category is not None:
            record["category"] = category
        apply_event(state, record, FeatureParams())
        for key in ((kind, None), (kind, category)) if category else ((kind, None),):
            add_plainly(expected.setdefault(key, WindowCounter()), ts)
    folded = {(kind, None): counter for kind, counter in state.counts.items()}
    for kind, by_category in state.category_counts.items():
        folded.update({(kind, category): c for category, c in by_category.items()})
    assert folded.keys() == expected.keys()
    for key, counter in folded.items():
        assert msgspec.msgpack.encode(counter) == msgspec.msgpack.encode(expected[key])
