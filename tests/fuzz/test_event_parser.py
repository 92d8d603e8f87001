"""Hypothesis on the event parser: any JSON either parses or raises `InvalidInput` with a field."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from relevo.errors import InvalidInput
from relevo.events import Event, Limits, parse_event

NOW = 1_767_225_600_000
LIMITS = Limits(now_ms=NOW)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [*Event.model_fields, "colour"]
plausible = {
    "type": st.sampled_from(["view", "add_to_cart", "purchase", "consent", "Bad Type", ""]),
    "user_id": st.text(max_size=300),
    "timestamp": st.integers(-(2**63), 2**63) | st.text(max_size=30) | st.floats(),
    "items": st.lists(
        st.dictionaries(
            st.sampled_from(["item_id", "quantity", "price", "category", "x"]), json_values
        ),
        max_size=3,
    ),
    "context": st.dictionaries(st.text(max_size=70), json_values, max_size=25),
    "properties": json_values,
}
event_like = st.fixed_dictionaries(
    {}, optional={name: plausible.get(name, json_values) for name in FIELDS}
)


@settings(max_examples=400, deadline=None)
@given(raw=json_values | event_like)
@example(raw={"type": "view", "user_id": "u", "properties": {"n": 2**64}})  # found by it
def test_any_json_parses_or_names_the_field(raw: Any) -> None:
    for prefix in ("", "events[3]"):
        outcome = _parse(raw, prefix)
        if isinstance(outcome, InvalidInput):
            assert outcome.field, f"no field for {raw!r}: {outcome.message}"
            assert outcome.field.startswith(prefix)
            assert outcome.message
            assert outcome.code == "invalid_event"
        else:
            assert outcome.user_id is not None or outcome.anonymous_id is not None


def _parse(raw: Any, prefix: str) -> Event | InvalidInput:
    """The event, or the `InvalidInput` it raised (any other exception fails the test)."""
    try:
        return parse_event(raw, LIMITS, prefix=prefix)
    except InvalidInput as error:
        return error
