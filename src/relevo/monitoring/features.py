"""What drift monitoring watches: the values of model inputs, computed by one function.

Three families of monitored features, each named ``family.name``:

- ``event.*`` and ``context.*``: what an event says (its type, item category, how
  many items; the value of a purchase, the unit price of item lines) and, once per
  session, its device and country: the raw input of every model;
- ``profile.*``: the user's profile right after the event was folded in (events,
  sessions, purchases, cart lines, monetary value): the features the propensity
  and hybrid models read;
- ``score.<placement>``: the score of the top item of each personalized decision.

Why one function (`observed_columns`), used live *and* at training/baseline time: a
reference is only comparable with live windows if both were computed by the same code
(the "one feature code path" rule of the architecture). `replay_features` runs the
archived events through the very `apply_event` that live traffic uses, and takes the
same `snapshot` after each.

Every value is a float (or None, missing) for numeric features and a string (or
None) for categorical ones; `CATEGORICAL` names the latter.

Features are computed a column at a time, for a whole batch of events: an applier
takes a `snapshot` of the few profile numbers as it folds each event in (a tuple, no
dict per event), and `observed_columns` turns the batch into one list per feature
(list comprehensions and ``map``). Built per event, a dict of a dozen features each,
this was a tenth of a worker's CPU.

>>> columns = observed_columns(
...     [{"type": "purchase", "value": 20.0, "items": [{"item_id": "a", "price": 10.0,
...       "quantity": 2, "category": "shoes"}], "context": {"device": "mobile"}}],
...     [(1, 1, 1, 0, 20.0, True)])
>>> columns  # doctest: +NORMALIZE_WHITESPACE
{'event.type': ['purchase'], 'event.category': ['shoes'], 'event.items': [1.0],
 'context.device': ['mobile'], 'context.country': [None], 'event.value': [20.0],
 'event.price': [10.0], 'profile.events': [0.693...], 'profile.sessions': [0.693...],
 'profile.purchases': [0.693...], 'profile.cart_lines': [0.0],
 'profile.monetary': [3.044...]}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from relevo.events import profile_key
from relevo.features.profile import FeatureParams, ProfileState, apply_event

Value = float | str | None

CATEGORICAL = frozenset({"event.type", "event.category", "context.device", "context.country"})
SCORE_PREFIX = "score."
NOT_OBSERVED = frozenset({"consent", "identify"})
"""Event types that carry no behaviour (and, for consent, are rare bursts): left out."""

Snapshot = tuple[int, int, int, int, float, bool]
"""What the features of an event need of the profile right after the event was folded
in: its events, sessions, purchases, cart lines and monetary value, and whether the
event opened its session (see `snapshot`)."""

_NOTHING: Mapping[str, Any] = {}


def is_categorical(feature: str) -> bool:
    return feature in CATEGORICAL


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_STRINGS = frozenset({str})


def _texts(values: list[Any]) -> list[Value]:
    """`_text` of each value: the list itself when every value is a non-empty string
    (as in every validated event: checked in C, no call per value), else value by value."""
    if _STRINGS.issuperset(map(type, values)) and "" not in values:
        return values
    return [_text(value) for value in values]


def observed(record: Mapping[str, Any]) -> bool:
    """Whether an event's features are monitored at all."""
    return record.get("type") not in NOT_OBSERVED


def snapshot(state: ProfileState) -> Snapshot:
    """The profile numbers an event's features need, taken right after it was folded
    into `state` (a later event of the same batch changes the state)."""
    session = state.session
    return (
        state.events,
        state.sessions,
        state.purchases,
        len(state.cart),
        state.monetary,
        session is None or session.events <= 1,
    )


def observed_columns(
    records: Sequence[Mapping[str, Any]], snapshots: Sequence[Snapshot]
) -> dict[str, list[Value]]:
    """Every monitored feature of these events (each with its `snapshot`), one column
    per feature in event order; a feature no event has is left out (live and replay)."""
    if not records:
        return {}
    events, sessions, purchases, cart_lines, monetary, opened = zip(*snapshots, strict=True)
    columns = event_columns(records, opened)
    columns.update(profile_columns(events, sessions, purchases, cart_lines, monetary))
    return {name: values for name, values in columns.items() if values}


def event_columns(
    records: Sequence[Mapping[str, Any]], opened: Sequence[bool]
) -> dict[str, list[Value]]:
    """What events say (after catalog enrichment), a column per feature.

    A feature is left out where it means nothing, rather than reported missing: the
    value only of purchases, the unit price only of events with item lines, the device
    and country only at the first event of a session (`opened`). Missing then means
    what it should: a purchase without its value, a line without a price. The context
    once per session because a session's events share it: counted per event, it would
    weigh long sessions more and the chi-square test would see clustered values as
    independent ones (false warnings).
    """
    types = [record.get("type") for record in records]
    lines = [record.get("items") for record in records]
    contexts = [
        record.get("context") or _NOTHING
        for record, first in zip(records, opened, strict=True)
        if first
    ]
    return {
        "event.type": _texts(types),
        "event.category": _texts(
            [
                record.get("category") or (found[0].get("category") if found else None)
                for record, found in zip(records, lines, strict=True)
            ]
        ),
        "event.items": [
            float(len(found)) if found else (1.0 if record.get("item_id") else 0.0)
            for record, found in zip(records, lines, strict=True)
        ],
        "context.device": _texts([context.get("device") for context in contexts]),
        "context.country": _texts([context.get("country") for context in contexts]),
        "event.value": [
            _number(record.get("value"))
            for record, kind in zip(records, types, strict=True)
            if kind == "purchase"
        ],
        "event.price": [_number(found[0].get("price")) for found in lines if found],
    }


def profile_columns(
    events: Sequence[int],
    sessions: Sequence[int],
    purchases: Sequence[int],
    cart_lines: Sequence[int],
    monetary: Sequence[float],
) -> dict[str, list[Value]]:
    """The profile's features, a column each (log scale for counts, like the models)."""
    return {
        "profile.events": list(map(math.log1p, events)),
        "profile.sessions": list(map(math.log1p, sessions)),
        "profile.purchases": list(map(math.log1p, purchases)),
        "profile.cart_lines": list(map(float, cart_lines)),
        # max(amount, 0.0) as it answers (-0.0 and NaN kept), without its argument parsing
        "profile.monetary": [math.log1p(0.0 if amount < 0.0 else amount) for amount in monetary],
    }


def replay_features(
    records: Iterable[dict[str, Any]], params: FeatureParams
) -> dict[str, list[Value]]:
    """Columns of event and profile features for archived records, in order.

    Each user's profile is rebuilt from nothing by `apply_event`, so the profile
    features are those live traffic had right after each event (point in time).
    """
    states: dict[str, ProfileState] = {}
    kept: list[dict[str, Any]] = []
    snapshots: list[Snapshot] = []
    for record in records:
        user = profile_key(record)
        state = states.get(user)
        if state is None:
            state = states[user] = ProfileState(user_id=user)
        apply_event(state, record, params)
        if observed(record):
            kept.append(record)
            snapshots.append(snapshot(state))
    return observed_columns(kept, snapshots)
