"""What drift monitoring watches: the values of model inputs, computed by one function.

Three families of monitored features, each named ``family.name``:

- ``event.*`` and ``context.*``: what an event says (its type, item category, how
  many items; the value of a purchase, the unit price of item lines) and, once per
  session, its device and country: the raw input of every model;
- ``profile.*``: the user's profile right after the event was folded in (events,
  sessions, purchases, cart lines, monetary value): the features the propensity
  and hybrid models read;
- ``score.<placement>``: the score of the top item of each personalized decision.

Why one function per family, used live *and* at training/baseline time: a reference
is only comparable with live windows if both were computed by the same code (the
"one feature code path" rule of the architecture). `replay_features` runs the
archived events through the very `apply_event` that live traffic uses.

Every value is a float (or None, missing) for numeric features and a string (or
None) for categorical ones; `CATEGORICAL` names the latter.

>>> event_features({"type": "purchase", "value": 20.0, "items": [{"item_id": "a",
...     "price": 10.0, "quantity": 2, "category": "shoes"}], "context": {"device": "mobile"}})
... # doctest: +NORMALIZE_WHITESPACE
{'event.type': 'purchase', 'event.category': 'shoes', 'event.items': 1.0,
 'context.device': 'mobile', 'context.country': None, 'event.value': 20.0,
 'event.price': 10.0}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from relevo.events import profile_key
from relevo.features.profile import FeatureParams, ProfileState, apply_event

Value = float | str | None

CATEGORICAL = frozenset({"event.type", "event.category", "context.device", "context.country"})
SCORE_PREFIX = "score."
NOT_OBSERVED = frozenset({"consent", "identify"})
"""Event types that carry no behaviour (and, for consent, are rare bursts): left out."""


def is_categorical(feature: str) -> bool:
    return feature in CATEGORICAL


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def event_features(record: Mapping[str, Any]) -> dict[str, Value]:
    """The monitored features of one event record (after catalog enrichment).

    A feature is left out where it means nothing, rather than reported missing: the
    value only of purchases, the unit price only of events with item lines. Missing
    then means what it should: a purchase without its value, a line without a price.
    """
    lines = record.get("items") or ()
    first: Mapping[str, Any] = lines[0] if lines else {}
    context: Mapping[str, Any] = record.get("context") or {}
    found: dict[str, Value] = {
        "event.type": _text(record.get("type")),
        "event.category": _text(record.get("category") or first.get("category")),
        "event.items": float(len(lines)) if lines else (1.0 if record.get("item_id") else 0.0),
        "context.device": _text(context.get("device")),
        "context.country": _text(context.get("country")),
    }
    if record.get("type") == "purchase":
        found["event.value"] = _number(record.get("value"))
    if lines:
        found["event.price"] = _number(first.get("price"))
    return found


def profile_features(state: ProfileState) -> dict[str, Value]:
    """The monitored features of a profile (log scale for counts, like the models)."""
    monetary = state.monetary
    return {
        "profile.events": math.log1p(state.events),
        "profile.sessions": math.log1p(state.sessions),
        "profile.purchases": math.log1p(state.purchases),
        "profile.cart_lines": float(len(state.cart)),
        # max(monetary, 0.0) as it answers (-0.0 and NaN kept), without the call's argument
        # parsing: this runs for every event a worker applies
        "profile.monetary": math.log1p(0.0 if monetary < 0.0 else monetary),
    }


SESSION_FEATURES = frozenset({"context.device", "context.country"})
"""Observed once per session (at its first event): a session's events share their
context, and counting it per event would weigh long sessions more and make the
chi-square test see clustered values as independent ones (false warnings)."""


def observed_features(state: ProfileState, record: Mapping[str, Any]) -> dict[str, Value]:
    """Every monitored feature of an event just folded into `state` (live and replay)."""
    found = event_features(record)
    session = state.session
    if session is not None and session.events > 1:
        for name in SESSION_FEATURES:
            del found[name]
    found.update(profile_features(state))  # in place: `found` is this call's own
    return found


def observed(record: Mapping[str, Any]) -> bool:
    """Whether an event's features are monitored at all."""
    return record.get("type") not in NOT_OBSERVED


def replay_features(
    records: Iterable[dict[str, Any]], params: FeatureParams
) -> dict[str, list[Value]]:
    """Columns of event and profile features for archived records, in order.

    Each user's profile is rebuilt from nothing by `apply_event`, so the profile
    features are those live traffic had right after each event (point in time).
    """
    states: dict[str, ProfileState] = {}
    columns: dict[str, list[Value]] = {}
    for record in records:
        user = profile_key(record)
        state = states.get(user)
        if state is None:
            state = states[user] = ProfileState(user_id=user)
        apply_event(state, record, params)
        if not observed(record):
            continue
        for name, value in observed_features(state, record).items():
            columns.setdefault(name, []).append(value)
    return columns
