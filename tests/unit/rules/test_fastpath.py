"""The fast path gives what the CEL library gives, on random expressions and data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import cel
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relevo.features.profile import FeatureParams, ProfileState, ProfileView, apply_event
from relevo.rules.codegen import NOW_MS, generate
from relevo.rules.fastpath import Err, compile_fast
from relevo.rules.timers import from_epoch_ms

ROOTS = frozenset({"a", "b", "now"})
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
KEYS = ["x", "y", "z"]
T0 = 1_767_225_600_000

scalars = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.5, -1.5, 2.0, 3.25]),
    st.sampled_from(["", "ab", "x", "é", "abc"]),
    st.booleans(),
    st.none(),
)
data = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    ),
    max_leaves=12,
)
roots = st.fixed_dictionaries(
    {"a": st.dictionaries(st.sampled_from(KEYS), data, max_size=3), "b": data}
)


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return repr(value)


paths = st.builds(
    lambda root, steps: root + "".join(steps),
    st.sampled_from(["a", "b", "x"]),
    st.lists(
        st.one_of(
            st.sampled_from(KEYS).map(lambda k: f".{k}"),
            st.sampled_from(KEYS).map(lambda k: f"['{k}']"),
            st.integers(0, 2).map(lambda i: f"[{i}]"),
        ),
        max_size=3,
    ),
)
times = st.one_of(
    st.sampled_from(
        [
            "timestamp('2026-01-01T00:00:00Z')",
            "timestamp('2026-01-02T03:04:05.5+02:00')",
            "timestamp('2026-01-01')",
            "duration('24h')",
            "duration('1h30m')",
            "duration('90')",
            "duration('-1.5s')",
            "now",
        ]
    ),
)
atoms = st.one_of(paths, scalars.map(literal), st.lists(scalars, max_size=3).map(literal), times)


def compose(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"!({e})"),
        inner.map(lambda e: f"size({e})"),
        st.tuples(inner, st.sampled_from(["contains", "startsWith", "endsWith"]), inner).map(
            lambda t: f"{t[0]}.{t[1]}({t[2]})"
        ),
        st.tuples(paths, st.sampled_from(KEYS)).map(lambda t: f"has({t[0]}.{t[1]})"),
        st.tuples(paths, inner).map(lambda t: f"{t[0]}[{t[1]}]"),  # a key or index computed
        st.tuples(inner, st.sampled_from(["+", "-"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(paths, st.sampled_from(["exists", "all"]), inner).map(
            lambda t: f"{t[0]}.{t[1]}(x, {t[2]})"
        ),
    )


expressions = st.recursive(atoms, compose, max_leaves=6)


def outcome(run: Any) -> tuple[str, Any]:
    try:
        return "ok", run()
    except BaseException as error:  # the CEL library raises builtin error types
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        return "error", None


def same(expected: tuple[str, Any], got: tuple[str, Any], source: str = "") -> bool:
    if expected[0] != got[0]:
        return False
    if expected[0] == "error":
        return True
    if type(expected[1]) is not type(got[1]):
        return False
    if expected[1] == got[1]:
        return True
    # `list + map` appends the map's keys in the library's hash order, which changes from
    # one process to the next (a Rust HashMap): only which keys, not their order, is
    # defined there, so only that can be compared
    return "+" in source and _as_multiset(expected[1]) == _as_multiset(got[1])


def _as_multiset(value: Any) -> Any:
    return sorted(map(repr, value)) if isinstance(value, list) else value


@settings(max_examples=1500, deadline=None)
@given(source=expressions, values=roots)
@example(source="([] + a)", values={"a": {"x": [], "y": 0, "z": 1}, "b": {}})
def test_fast_path_agrees_with_the_cel_library(source: str, values: dict[str, Any]) -> None:
    try:
        program = cel.compile(source)
    except BaseException:  # not valid CEL: nothing to compare
        return
    fast = compile_fast(source, ROOTS)
    if fast is None:
        return
    expected = outcome(lambda: program.execute(cel.Context(values)))
    for kind, run in (("closures", fast), ("generated", generate(fast, source))):
        result = run(values)
        got = ("error", None) if isinstance(result, Err) else ("ok", result)
        assert same(expected, got, source), (kind, source, values, expected, got)


class LazyMapping(Mapping[str, Any]):
    """A mapping that is not a dict, like the profile view rules read."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return LazyMapping(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@settings(max_examples=500, deadline=None)
@given(source=expressions, values=roots)
def test_generated_code_reads_other_mappings_like_dicts(
    source: str, values: dict[str, Any]
) -> None:
    fast = compile_fast(source, ROOTS)
    if fast is None:
        return
    lazy = {name: LazyMapping(v) if isinstance(v, dict) else v for name, v in values.items()}
    expected = fast(values)
    got = generate(fast, source)(lazy)
    if isinstance(expected, Err):
        assert isinstance(got, Err), (source, values, got)
        assert got.kind == expected.kind, (source, values, got)
    else:
        got = plain(got)
        assert type(got) is type(expected), (source, values, got)
        assert got == expected, (source, values, got)


def plain(value: Any) -> Any:
    if isinstance(value, LazyMapping):
        return {key: plain(item) for key, item in value.items()}
    return value


def test_generated_code_inlines_paths_comparisons_and_logic() -> None:
    source = "profile.counts.view['5m'] > 3 && context.device in ['mobile', 'tablet']"
    fast = compile_fast(source, frozenset({"profile", "context"}))
    assert fast is not None
    condition = generate(fast, source)
    assert condition.__code__.co_consts.count("counts") == 1  # the path is in the code
    profile = {"counts": {"view": {"5m": 4}}}
    assert condition({"profile": profile, "context": {"device": "tablet"}}) is True
    assert condition({"profile": profile, "context": {"device": "desktop"}}) is False
    missing = condition({"profile": {"counts": {}}, "context": {"device": "tablet"}})
    assert isinstance(missing, Err)
    assert missing.kind == "missing_key"
    assert condition({"profile": {"counts": {}}, "context": {"device": "tv"}}) is False


def test_deeply_nested_logic_still_compiles() -> None:
    source = " && ".join(f"(a.x == {n} || a.y == {n})" for n in range(60))
    fast = compile_fast(source, ROOTS)
    assert fast is not None
    values = {"a": {"x": 1, "y": 2}, "b": None}
    assert generate(fast, source)(values) is fast(values) is False


@pytest.mark.parametrize(
    "source",
    [
        "profile.category_counts.view['electronics']['5m'] > 3",
        "context.device == 'mobile' && context.referrer.contains('instagram')",
        "'vip' in profile.segments && profile.rfm.monetary > 100.0",
        "has(profile.counts.purchase) && profile.counts.purchase['30d'] >= 2",
        "profile.session.events >= 3 && size(profile.recent_items) > 10",
        "event.value > 50.0 && context.country in ['FR', 'DE', 'ES']",
        "now - timestamp(profile.last_seen.purchase) > duration('24h')",
        "profile.cart.exists(c, c.quantity > 1)",
        "profile.counts.view['1h'] + 1 > 2",
    ],
)
def test_common_conditions_take_the_fast_path(source: str) -> None:
    assert compile_fast(source, frozenset({"profile", "event", "context", "now"})) is not None


@pytest.mark.parametrize(
    "source",
    [
        "profile.counts.view['1h'] * 2 > 2",
        "profile.x ? true : false",
        "context.page.matches('^/p/')",
        "'a\\\\b' == context.page",
    ],
)
def test_the_rest_is_left_to_the_cel_library(source: str) -> None:
    assert compile_fast(source, frozenset({"profile", "event", "context", "now"})) is None


@pytest.mark.parametrize(
    "source",
    [
        "profile.session.events >= 3",
        "profile.counts.view['5m'] > 1",
        "profile.category_counts.view['shoes']['1h'] > 1",
        "profile.affinities['shoes'] > 0.5",
        "profile.last_seen.view != ''",
        "has(profile.counts.view) && !has(profile.counts.purchase)",
        "has(profile.last_seen.view) || has(profile.first_seen.click)",
        "has(profile.affinities.shoes) && has(profile.category_counts.view)",
        "has(profile.attributes.tier)",
        "now - timestamp(profile.last_seen.view) > duration('1m')",
        "now - timestamp(profile.first_seen.view) >= duration('180s')",
        "now - timestamp(profile.last_seen.view) < duration('1s')",
        "profile.recent_items.exists(i, i == 'sku-1') && profile.cart.all(c, c.quantity < 2)",
        "size(profile.recent_items) == 1 && profile.segments.size() <= 1",
        "size(profile.cart) == 0 && size(profile.purchased_items) == 0",
        "'vip' in profile.segments || !('gold' in profile.segments)",
    ],
)
def test_generated_code_reads_a_profile_view_like_the_closures(source: str) -> None:
    """Direct reads of the profile's state (and their fallbacks) change no result."""
    fast = compile_fast(source, frozenset({"profile", "now"}))
    assert fast is not None
    condition = generate(fast, source)
    params = FeatureParams()
    empty = ProfileState(user_id="u")
    active = ProfileState(user_id="u")
    for at in (0, 60_000, 120_000):
        apply_event(
            active,
            {"event_id": f"e{at}", "user_id": "u", "type": "view", "timestamp": T0 + at,
             "category": "shoes", "item_id": "sku-1"},
            params,
        )  # fmt: skip
    active.attributes["tier"] = "gold"
    active.segments.append("vip")
    checked = 0
    for state in (empty, active):
        for now in (T0 + 120_000, T0 + 180_000, T0 + 180_001):  # around the limits
            view = {"profile": ProfileView(state, now, params), "now": from_epoch_ms(now)}
            expected = fast(view)
            for variables in (view, {**view, NOW_MS: now}):  # `now` in milliseconds too, or not
                got = condition(variables)
                if isinstance(expected, Err):
                    assert isinstance(got, Err)
                    assert (got.kind, got.message) == (expected.kind, expected.message)
                else:
                    assert got is expected
                    checked += expected is True
    assert checked  # each condition holds somewhere


def test_cheaper_terms_run_first_but_the_first_error_is_the_written_ones() -> None:
    """`&&`/`||` evaluate event and context terms before profile reads (any term's
    absorbing value decides); when none decides, the error is the first in the text."""
    source = "profile.counts.view['5m'] > 1 && event.category == 'shoes'"
    fast = compile_fast(source, frozenset({"profile", "event"}))
    assert fast is not None
    condition = generate(fast, source)
    reads: list[str] = []

    class Profile(LazyMapping):
        def __getitem__(self, key: str) -> Any:
            reads.append(key)
            return super().__getitem__(key)

    assert condition({"profile": Profile({}), "event": {"category": "hats"}}) is False
    assert reads == []  # decided by the event alone
    assert fast({"profile": Profile({}), "event": {"category": "hats"}}) is False
    assert reads  # the closures read in the written order
    both_missing = condition({"profile": Profile({}), "event": {}})
    assert isinstance(both_missing, Err)
    assert both_missing.message == "no such key: counts"
    assert both_missing.message == fast({"profile": {}, "event": {}}).message
