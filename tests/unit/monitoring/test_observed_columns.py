"""The monitored features, computed a batch at a time, against their definition one
event at a time.

`observed_columns` builds one list per feature for a whole batch (from a `snapshot` of
the profile taken as each event was folded in); `reference_features` below is the
definition it replaced, one dict per event: both must give the same features with the
same values, in event order, on arbitrary and odd records (missing, empty, non-finite,
boolean or mistyped fields) and arbitrary profiles.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.features.profile import CartLine, FeatureParams, ProfileState, apply_event
from relevo.features.sessions import Session
from relevo.monitoring.features import (  # the per-value helpers are not what changed
    Value,
    _number,
    _text,
    observed,
    observed_columns,
    replay_features,
    snapshot,
)
from relevo.monitoring.live_drift import MESSAGE_VALUES, Observations
from tests.conftest import StoreHarness

T0 = 1_767_225_600_000
MINUTE = 60_000


def reference_features(state: ProfileState, record: Mapping[str, Any]) -> dict[str, Value]:
    """The features of one event just folded into `state`, as first defined."""
    lines = record.get("items") or ()
    first: Mapping[str, Any] = lines[0] if lines else {}
    context: Mapping[str, Any] = record.get("context") or {}
    found: dict[str, Value] = {
        "event.type": _text(record.get("type")),
        "event.category": _text(record.get("category") or first.get("category")),
        "event.items": float(len(lines)) if lines else (1.0 if record.get("item_id") else 0.0),
    }
    if state.session is None or state.session.events <= 1:  # once per session
        found["context.device"] = _text(context.get("device"))
        found["context.country"] = _text(context.get("country"))
    if record.get("type") == "purchase":
        found["event.value"] = _number(record.get("value"))
    if lines:
        found["event.price"] = _number(first.get("price"))
    found["profile.events"] = math.log1p(state.events)
    found["profile.sessions"] = math.log1p(state.sessions)
    found["profile.purchases"] = math.log1p(state.purchases)
    found["profile.cart_lines"] = float(len(state.cart))
    found["profile.monetary"] = math.log1p(max(state.monetary, 0.0))
    return found


def reference_columns(
    states: list[ProfileState], records: list[dict[str, Any]]
) -> dict[str, list[Value]]:
    columns: dict[str, list[Value]] = {}
    for state, record in zip(states, records, strict=True):
        for name, value in reference_features(state, record).items():
            columns.setdefault(name, []).append(value)
    return columns


def exactly(columns: dict[str, list[Value]]) -> dict[str, list[str]]:
    """Columns compared value by value as their reprs: NaN equals NaN, -0.0 is not 0.0
    and 1 is not 1.0."""
    return {name: [repr(value) for value in values] for name, values in columns.items()}


odd = st.sampled_from(
    [None, "", 0, 1, -3, 2.5, -0.0, math.nan, math.inf, -math.inf, True, False, "x", [], {}]
)
texts = st.one_of(st.sampled_from(["view", "purchase", "add_to_cart", "mobile", "FR"]), odd)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), odd)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for field, values in (
        ("type", st.one_of(st.sampled_from(["view", "purchase", "purchase"]), texts)),
        ("category", texts),
        ("item_id", texts),
        ("value", numbers),
    ):
        if draw(st.booleans()):
            record[field] = draw(values)
    if draw(st.booleans()):
        line = st.fixed_dictionaries({}, optional={"category": texts, "price": numbers})
        record["items"] = draw(st.one_of(st.none(), st.lists(line, max_size=3)))
    if draw(st.booleans()):
        context = st.fixed_dictionaries({}, optional={"device": texts, "country": texts})
        record["context"] = draw(st.one_of(st.none(), context))
    return record


@st.composite
def states(draw: st.DrawFn) -> ProfileState:
    counts = st.integers(min_value=0, max_value=10**6)
    session = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=5)))
    return ProfileState(
        user_id="u",
        events=draw(counts),
        sessions=draw(counts),
        purchases=draw(counts),
        monetary=draw(st.one_of(st.floats(), st.sampled_from([-0.0, 0.0, -1.5]))),
        cart={str(n): CartLine(1, T0) for n in range(draw(st.integers(0, 4)))},
        session=None if session is None else Session("s", T0, T0, events=session),
    )


@settings(max_examples=300)
@given(st.lists(st.tuples(states(), records()), max_size=12))
def test_a_batch_s_columns_are_its_events_features_one_by_one(
    batch: list[tuple[ProfileState, dict[str, Any]]],
) -> None:
    folded = [state for state, _ in batch]
    events = [record for _, record in batch]
    columns = observed_columns(events, [snapshot(state) for state in folded])
    assert exactly(columns) == exactly(reference_columns(folded, events))


def test_a_replay_observes_each_event_with_its_profile_at_that_event() -> None:
    """Several users, several sessions each (gaps past the session timeout), consent
    and identify events (not observed), purchases of several lines: the snapshot is the
    profile right after each event, not the one the replay ends with."""
    rng = random.Random(5)
    params = FeatureParams()
    events: list[dict[str, Any]] = []
    at = T0
    for number in range(600):
        at += rng.choice([1_000, 5 * MINUTE, 90 * MINUTE])
        kind = rng.choice(["view", "view", "add_to_cart", "purchase", "consent", "identify"])
        event: dict[str, Any] = {
            "event_id": f"e{number}",
            "type": kind,
            "user_id": f"u{rng.randrange(7)}",
            "timestamp": at,
            "context": {"device": rng.choice(["mobile", "desktop"]), "country": "FR"},
        }
        if kind == "purchase":
            event["value"] = rng.choice([12.5, 40, math.nan])
            event["items"] = [
                {"item_id": f"i{n}", "quantity": 1, "price": 9.9, "category": "shoes"}
                for n in range(rng.randrange(1, 3))
            ]
        elif kind in {"view", "add_to_cart"}:
            event["item_id"] = f"i{rng.randrange(20)}"
        events.append(event)

    states: dict[str, ProfileState] = {}
    expected: dict[str, list[Value]] = {}
    for event in events:
        state = states.setdefault(event["user_id"], ProfileState(user_id=event["user_id"]))
        apply_event(state, event, params)
        if observed(event):
            for name, value in reference_features(state, event).items():
                expected.setdefault(name, []).append(value)

    replayed = replay_features(events, params)
    assert exactly(replayed) == exactly(expected)
    assert len(replayed["context.device"]) < len(replayed["event.type"])  # once a session
    assert len(replayed["event.type"]) == sum(observed(event) for event in events)


def test_no_features_of_no_events() -> None:
    assert observed_columns([], []) == {}


M = MESSAGE_VALUES


@pytest.mark.parametrize(
    "chunks",
    [
        [3 * M],  # one batch three times the reservoir
        [M // 2, 5 * M // 2],  # fits, then overflows
        [M, *[1] * (M // 2)],  # full, then one value at a time (decisions' scores)
        [M - 10, 5, 5, 490, 1, M - 1, 500, 10],  # every kind of step
    ],
)
def test_the_reservoir_keeps_each_value_with_the_same_odds(chunks: list[int]) -> None:
    """Values 0..n-1 added in these chunks, 100 times over (seeded): each trial keeps
    `MESSAGE_VALUES` distinct ones, and each tenth of the stream is kept as often as
    the others (within five standard deviations of a uniform sample's count)."""
    total, trials = sum(chunks), 100
    tenth = total // 10
    kept_per_tenth = [0] * 10
    for trial in range(trials):
        observations = Observations(None, None)  # type: ignore[arg-type]  # never flushed
        observations._generator = np.random.default_rng(trial)
        start = 0
        for size in chunks:
            observations.add_columns(
                {"event.value": [float(n) for n in range(start, start + size)]}
            )
            start += size
        kept = observations._buffer["event.value"]
        assert len(set(kept)) == len(kept) == M
        assert observations._seen["event.value"] == total
        assert observations.dropped == total - M
        for value in kept:
            assert isinstance(value, float)
            kept_per_tenth[int(value) // tenth] += 1
    expected = trials * M / 10
    # a uniform M-subset of `total` holds a hypergeometric count of each tenth
    deviation = math.sqrt(trials * M * 0.1 * 0.9 * (total - M) / (total - 1))
    assert all(abs(count - expected) < 5 * deviation for count in kept_per_tenth), kept_per_tenth


def test_values_that_fit_are_kept_in_order_and_other_features_draw_nothing() -> None:
    observations = Observations(None, None)  # type: ignore[arg-type]  # never flushed
    observations.add_columns({"event.value": [1.0, 2.0], "event.type": ["view"]})
    observations.add_columns({"event.value": [3.0], "profile.events": [0.0] * (M + 5)})
    assert observations._buffer["event.value"] == [1.0, 2.0, 3.0]
    assert observations._buffer["event.type"] == ["view"]
    assert len(observations._buffer["profile.events"]) == M
    assert observations.dropped == 5


async def test_an_empty_column_adds_no_feature(harness: StoreHarness) -> None:
    observations = Observations(harness.store, harness.clock)
    observations.add_columns({"event.value": [], "event.type": ["view"]})
    await observations.flush()
    (message,), _ = await observations.read(None)
    assert message == {"event.type": ["view"]}
