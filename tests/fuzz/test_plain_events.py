"""The plain events' path (`events._plain_records`) against pydantic's: the same records.

Whatever batch the plain path takes, pydantic must take too and give the same records,
byte for byte as the log stores them (`orjson.dumps`: key order, 5 against 5.0); what it
refuses, pydantic decides (and names the field). Values sit on and around every bound.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from relevo.events import (
    _CONTEXT_LENGTHS,
    _EVENT_CHECKS,
    _EVENT_LIST,
    _LINE_FIELDS,
    EARLIEST_MS,
    Context,
    Event,
    Limits,
    LineItem,
    parse_all,
)
from relevo.events import _plain_records as plain_records

NOW = 1_767_225_600_000
LIMITS = Limits(now_ms=NOW)


def _pydantic(raws: list[Any]) -> list[dict[str, Any]] | None:
    try:
        events = _EVENT_LIST.validate_python(raws, context={"limits": LIMITS})
    except ValidationError:
        return None
    dumped: list[dict[str, Any]] = _EVENT_LIST.dump_python(events, exclude_none=True)
    return dumped


def _texts(most: int) -> st.SearchStrategy[str]:
    """Strings around a bound of `most` characters, some with control characters or a lone
    surrogate, some not ASCII."""
    edges = [0, 1, 2, most - 1, most, most + 1]
    odd = ["\x00", "\x1f", "\x7f", "\ud800", "\udfff", "é", "\n", " ", "A"]
    return st.one_of(
        st.sampled_from(edges).map(lambda n: "x" * max(n, 0)),
        st.text(max_size=12),
        st.tuples(st.text(max_size=6), st.sampled_from(odd), st.text(max_size=6)).map("".join),
    )


numbers = st.one_of(
    st.integers(-(10**13), 10**13),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e12, -1e12, 1e12 + 1, 1e9, 1e9 + 0.5, 2**64, True, False]),
)
scalars = st.none() | st.booleans() | numbers | _texts(20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` seven times in eight, else `odd`: batches the plain path takes are common
    enough to test, and each bound is still met."""
    # (not `one_of(*[good] * 7, odd)`: Hypothesis does not draw its branches evenly)
    return st.sampled_from([*[False] * 7, True]).flatmap(lambda rare: odd if rare else good)


def _odd_key(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`fields` in any order, once in eight times with a key no schema knows (custom, in a
    context)."""
    odd = _mostly(st.just(fields), scalars.map(lambda value: {**fields, "colour": value}))
    return odd.flatmap(lambda found: st.permutations(list(found.items())).map(dict))


good_text = st.text(st.characters(min_codepoint=32, exclude_categories=["Cs"]), max_size=12)
ids = _mostly(good_text.filter(bool), st.none() | _texts(256) | numbers)
timestamps = _mostly(
    st.integers(EARLIEST_MS, NOW + 300_000)
    | st.sampled_from([EARLIEST_MS - 1, EARLIEST_MS, NOW + 300_000, NOW + 300_001]),
    st.none()
    | st.sampled_from(
        [EARLIEST_MS - 1, NOW + 300_001, 32_503_680_000_001, float(NOW), True, "2026-01-01Z"]
    ),
)
types = _mostly(
    st.sampled_from(["view", "purchase", "add_to_cart", "custom_1", "a" * 64]),
    st.none() | numbers | st.sampled_from(["Bad", "_x", "", "a" * 65, "view\n", "é"]),
)
lines = st.lists(
    st.fixed_dictionaries(
        {"item_id": ids},
        optional={
            "quantity": _mostly(
                st.integers(1, 1_000_000), st.sampled_from([None, 0, 1_000_001, True, 1.0])
            ),
            "price": _mostly(st.floats(0, 1e9) | st.integers(0, 10**9), numbers | st.none()),
            "category": _mostly(good_text.filter(bool), st.none() | _texts(128)),
        },
    ).flatmap(_odd_key),
    max_size=3,
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        **{
            name: _mostly(good_text, st.none() | _texts(most) | numbers)
            for name, most in _CONTEXT_LENGTHS.items()
        },
        "country": _mostly(
            st.sampled_from(["FR", "de"]),
            st.none() | st.sampled_from(["F", "FRA", "é1", "ÉÉ", "F1", 33]),
        ),
    },
).flatmap(_odd_key)
events = st.fixed_dictionaries(
    {"type": types, "user_id": ids},
    optional={
        "event_id": ids,
        "anonymous_id": ids,
        "session_id": ids,
        "timestamp": timestamps,
        "item_id": ids,
        "items": _mostly(lines, st.none() | json_values),
        "category": _mostly(good_text.filter(bool), st.none() | _texts(128)),
        "value": _mostly(st.floats(-1e12, 1e12) | st.integers(-(10**12), 10**12), numbers),
        "context": _mostly(contexts, st.none() | json_values),
        "properties": _mostly(st.dictionaries(st.text(max_size=6), json_values), json_values),
        "decision_id": ids,
    },
).flatmap(_odd_key)
COMMON = {
    "event_id": "e-1",
    "type": "purchase",
    "user_id": "u1",
    "session_id": "s1",
    "timestamp": NOW,
    "items": [{"item_id": "sku-1", "price": 3}],
    "value": 12,
    "context": {"country": "FR", "device": "mobile"},
    "properties": {"coupon": None, "n": [1, 2.5]},
    "decision_id": "d1",
}


@settings(max_examples=1500, deadline=None)
@given(raws=st.lists(events, min_size=1, max_size=2))
@example(raws=[COMMON])
@example(raws=[{**COMMON, "properties": {"n": 2**64}}])
@example(raws=[{**COMMON, "context": {"device": "\ud800"}}])
@example(raws=[{**COMMON, "context": {"country": "ÉÉ"}}])
@example(raws=[{**COMMON, "timestamp": NOW + 300_001}])
@example(raws=[{**COMMON, "user_id": "x" * 257}])
@example(raws=[{**COMMON, "items": [{"item_id": "sku-1", "price": -0.5}]}])
@example(raws=[{**COMMON, "items": [{"item_id": "sku-1", "quantity": 0}]}])
def test_the_plain_path_gives_pydantics_records(raws: list[Any]) -> None:
    plain = plain_records(raws, LIMITS)
    if plain is None:
        return  # pydantic decides
    reference = _pydantic(raws)
    assert reference is not None, f"pydantic refuses what the plain path took: {raws!r}"
    assert [orjson.dumps(r) for r in plain] == [orjson.dumps(r) for r in reference]
    assert repr(plain) == repr(reference)


def test_the_common_shape_takes_the_plain_path() -> None:
    """Not vacuous: the shapes clients send (and `bench.load` posts) are taken."""
    simple = {"event_id": "h-1", "type": "view", "user_id": "u", "item_id": "it-1"}
    raws = [COMMON, simple, {**simple, "context": {"device": "mobile", "country": "FR"}}]
    plain = plain_records(raws, LIMITS)
    assert plain is not None
    assert plain == _pydantic(raws)
    assert plain == parse_all(raws, LIMITS)


def test_the_checks_cover_the_schema() -> None:
    """A field added to the schema must be checked here too (else refused: pydantic's)."""
    assert [name for name, _ in _EVENT_CHECKS] == list(Event.model_fields)
    assert list(_CONTEXT_LENGTHS) == list(Context.model_fields)
    assert set(LineItem.model_fields) == _LINE_FIELDS
