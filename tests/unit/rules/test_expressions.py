"""CEL expressions: compile-time checks with positions, runtime errors as values, explain."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.rules.expressions import (
    KNOWN_FUNCTIONS,
    Activation,
    ActivationError,
    Expression,
    ExpressionCompileError,
    ExpressionEvaluationError,
    Projection,
)

from .builders import make_event, make_profile

EVENT_ROOTS = {"profile", "event", "context", "now"}


def activation(**values: Any) -> Activation:
    return Activation(values)


# -------------------------------------------------------------------------- compile errors


def test_syntax_error_carries_rule_id_field_and_line_column() -> None:
    source = "profile.counts.view['5m'] > 3 &&\n  (context.device =="
    with pytest.raises(ExpressionCompileError) as info:
        Expression.compile(source, rule_id="burst", field="when")
    err = info.value
    assert err.rule_id == "burst"
    assert err.field == "when"
    assert err.position is not None
    assert (err.position.line, err.position.column) == (2, 21)
    assert err.position.offset == len(source)  # the parser stopped at end of input
    assert "mismatched input" in err.message
    assert str(err).startswith("rule 'burst': when: ")
    assert str(err).endswith("at 2:21")


def test_unknown_function_is_rejected_at_compile_time_with_its_position() -> None:
    source = "size(profile.segments) > 0 && lowerCase(context.device) == 'mobile'"
    with pytest.raises(ExpressionCompileError) as info:
        Expression.compile(source, rule_id="r1", roots=EVENT_ROOTS)
    err = info.value
    assert "unknown function 'lowerCase'" in err.message
    assert err.position is not None
    assert err.position.offset == source.index("lowerCase")
    assert (err.position.line, err.position.column) == (1, source.index("lowerCase") + 1)


def test_unknown_method_is_located_on_its_line() -> None:
    source = "context.device == 'mobile'\n&& context.referrer.has_text('x')"
    with pytest.raises(ExpressionCompileError) as info:
        Expression.compile(source, roots=EVENT_ROOTS)
    assert info.value.position is not None
    assert (info.value.position.line, info.value.position.column) == (2, 21)


def test_misspelt_variable_is_rejected_with_its_position() -> None:
    with pytest.raises(ExpressionCompileError) as info:
        Expression.compile("event.type == 'view' && proflie.segments.size() > 0", roots=EVENT_ROOTS)
    assert "unknown variable 'proflie'" in info.value.message
    assert info.value.position is not None
    assert info.value.position.column == len("event.type == 'view' && ") + 1


def test_item_is_not_a_variable_in_event_conditions() -> None:
    with pytest.raises(ExpressionCompileError, match="unknown variable 'item'"):
        Expression.compile("item.in_stock", roots=EVENT_ROOTS)


def test_comprehension_variables_are_not_unknown() -> None:
    expr = Expression.compile(
        "profile.cart.exists(c, c.quantity > 1) && profile.segments.all(s, s != 'banned')",
        roots=EVENT_ROOTS,
    )
    assert expr.variables == {"profile"}
    assert expr.evaluate(activation(profile=make_profile())) is True


def test_type_names_are_not_unknown_variables() -> None:
    expr = Expression.compile(
        "type(profile.rfm.recency_days) == double && type(profile.segments) == list",
        roots=EVENT_ROOTS,
    )
    assert expr.variables == {"profile"}
    assert expr.evaluate(activation(profile=make_profile())) is True


def test_empty_expression_is_a_compile_error() -> None:
    with pytest.raises(ExpressionCompileError, match="empty expression"):
        Expression.compile("   ")


@pytest.mark.parametrize("name", sorted(KNOWN_FUNCTIONS))
def test_every_known_function_exists_in_the_runtime(name: str) -> None:
    """Keeps the compile-time allow-list honest against the installed library."""
    calls = {
        "size": "size('ab')",
        "contains": "'ab'.contains('a')",
        "startsWith": "'ab'.startsWith('a')",
        "endsWith": "'ab'.endsWith('b')",
        "matches": "'ab'.matches('^a')",
        "int": "int('1')",
        "uint": "uint(1)",
        "double": "double(1)",
        "string": "string(1)",
        "bytes": "bytes('a')",
        "timestamp": "timestamp('2026-01-01T00:00:00Z')",
        "duration": "duration('1h')",
        "dyn": "dyn(1)",
        "type": "type(1)",
    }
    source = calls.get(name, f"timestamp('2026-01-01T00:00:00Z').{name}()")
    expr = Expression.compile(source)
    expr.evaluate(activation())  # raises if the runtime lacks the function


# ---------------------------------------------------------------------------- evaluation


def test_supports_map_indexing_in_has_and_time_arithmetic() -> None:
    act = activation(
        profile=make_profile(),
        event=make_event(timestamp="2026-11-26T10:05:00.000Z"),
        context={"device": "mobile", "referrer": "https://instagram.com/p/1"},
        now=dt.datetime(2026, 11, 26, 10, 5, tzinfo=dt.UTC),
    )
    cases = {
        "profile.category_counts.view['electronics']['5m'] == 4": True,
        "context.referrer.contains('instagram')": True,
        "'vip' in profile.segments": True,
        "has(profile.rfm.monetary) && !has(profile.rfm.nope)": True,
        "timestamp(event.timestamp) - timestamp(profile.last_seen.view) == duration('5m')": True,
        "now - timestamp(profile.first_seen.view) > duration('1h')": True,
        "profile.rfm.monetary > 50": True,  # int vs double compares without a cast
    }
    for source, expected in cases.items():
        assert Expression.compile(source).evaluate(act) is expected, source


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("profile.counts.view['2w'] > 1", "missing_key"),
        ("profile.counts.view['5m'] > 'a'", "type_error"),
        ("profile.recent_items[10] == 'x'", "index_out_of_range"),
        ("profile.counts.view['5m'] / 0 > 1", "division_by_zero"),
        ("timestamp(profile.user_id) > now", "function_error"),
    ],
)
def test_runtime_errors_become_typed_errors(source: str, kind: str) -> None:
    expr = Expression.compile(source, rule_id="r", field="when")
    act = activation(profile=make_profile(), now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ExpressionEvaluationError) as info:
        expr.evaluate(act)
    assert info.value.kind == kind
    assert info.value.rule_id == "r"
    assert "CEL does not coerce" not in info.value.message  # generic advice trimmed


def test_a_non_boolean_condition_is_an_error_not_truthiness() -> None:
    expr = Expression.compile("profile.counts.view['5m']")
    with pytest.raises(ExpressionEvaluationError) as info:
        expr.evaluate_bool(activation(profile=make_profile()))
    assert info.value.kind == "not_boolean"


def test_short_circuit_hides_errors_on_the_untaken_branch() -> None:
    expr = Expression.compile("has(profile.vip_since) && profile.vip_since > 3")
    assert expr.evaluate_bool(activation(profile=make_profile())) is False


def test_activation_rejects_values_cel_cannot_represent() -> None:
    with pytest.raises(ActivationError):
        Activation({"profile": {"tags": {"a", "b"}}})
    act = activation(profile={})
    with pytest.raises(ActivationError):
        act.bind("item", {"x": object()})


def test_bind_replaces_one_variable() -> None:
    expr = Expression.compile("item.price > 10.0")
    act = activation(profile=make_profile(), item={"price": 5.0})
    assert expr.evaluate(act) is False
    act.bind("item", {"price": 50.0})
    assert expr.evaluate(act) is True


@given(count=st.integers(min_value=0, max_value=10_000), threshold=st.integers(0, 10_000))
def test_threshold_condition_agrees_with_python(count: int, threshold: int) -> None:
    expr = Expression.compile(f"profile.category_counts.view['electronics']['5m'] > {threshold}")
    assert expr.evaluate(activation(profile=make_profile(count))) is (count > threshold)


# ------------------------------------------------------------------------- static analysis


def test_reads_lists_the_paths_an_expression_can_follow() -> None:
    expr = Expression.compile(
        "has(profile.rfm.monetary) && profile['counts'].view['5m'] > 1 "
        "&& profile.segments.exists(s, s == 'vip') && context.device == 'x' "
        "&& profile.recent_items[0] == 'a' && profile.affinities[context.device] > 1.0"
    )
    assert expr.reads == (
        ("profile", "rfm", "monetary"),
        ("profile", "counts", "view", "5m"),
        ("profile", "segments"),
        ("context", "device"),
        ("profile", "recent_items"),  # an index stops the path: the list is read whole
        ("profile", "affinities"),
    )


@pytest.mark.parametrize("source", ["size(profile) > 3", "profile[event.type] != null"])
def test_dynamic_access_reads_the_whole_root(source: str) -> None:
    assert ("profile",) in Expression.compile(source).reads


def test_string_literals_do_not_look_like_references() -> None:
    expr = Expression.compile("context.page == 'profile.nope(x) && item.y'")
    assert expr.variables == {"context"}
    assert expr.reads == (("context", "page"),)
    assert expr.paths == ("context.page",)


def test_projection_keeps_only_what_is_read() -> None:
    proj = Projection.of(
        [
            Expression.compile("profile.counts.view['5m'] > 1 && has(profile.rfm.nope)"),
            Expression.compile("profile.counts.view.size() > 0 && now != null"),
        ]
    )
    profile = make_profile()
    projected = proj.project({"profile": profile, "event": make_event(), "now": None})
    assert projected == {
        "profile": {"counts": {"view": profile["counts"]["view"]}, "rfm": {}},
        "now": None,
    }
    assert proj.project_one("item", {"x": 1}) is None  # nothing reads item


KEYS = st.sampled_from(["a", "b", "c"])
TREES = st.recursive(
    st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "x"]), st.none()),
    lambda children: st.dictionaries(KEYS, children, max_size=3) | st.lists(children, max_size=3),
    max_leaves=12,
)
TEMPLATES = [
    "has(profile.{k1}.{k2})",
    "profile.{k1}.{k2} == 1",
    "profile.{k1}['{k2}'] != null",
    "size(profile.{k1}) > 1",
    "profile.{k1}.exists(x, x == '{k2}')",
    "profile.{k1}[context.key] == 1",
    "profile.{k1}[0] == 1",
    "profile.{k1}.{k2}.{k3} > 0 || has(profile.{k3})",
    "'{k2}' in profile.{k1}",
]


@settings(max_examples=300, deadline=None)
@given(
    profile=st.dictionaries(KEYS, TREES, max_size=3),
    templates=st.lists(st.sampled_from(TEMPLATES), min_size=1, max_size=3),
    keys=st.tuples(KEYS, KEYS, KEYS),
    context_key=KEYS,
)
def test_projection_never_changes_a_result(
    profile: dict[str, Any], templates: list[str], keys: tuple[str, str, str], context_key: str
) -> None:
    k1, k2, k3 = keys
    exprs = [Expression.compile(t.format(k1=k1, k2=k2, k3=k3)) for t in templates]
    values = {"profile": profile, "context": {"key": context_key}}
    full, projected = Activation(values), Activation(Projection.of(exprs).project(values))

    def outcome(expr: Expression, act: Activation) -> Any:
        try:
            return ("value", expr.evaluate(act))
        except ExpressionEvaluationError as exc:
            return ("error", exc.kind)

    for expr in exprs:
        assert outcome(expr, projected) == outcome(expr, full), expr.source


# ---------------------------------------------------------------------------------- explain


def test_explain_reports_terms_and_path_values() -> None:
    expr = Expression.compile(
        "context.device == 'mobile' && context.referrer.contains('instagram') "
        "&& profile.counts.view['2w'] > 1"
    )
    act = activation(
        profile=make_profile(), context={"device": "mobile", "referrer": "https://x.com"}
    )
    exp = expr.explain(act)
    # CEL's && is commutative over errors: a false term wins over a failing one.
    assert (exp.result, exp.error) == (False, None)
    assert [(t.source, t.value) for t in exp.terms[:2]] == [
        ("context.device == 'mobile'", True),
        ("context.referrer.contains('instagram')", False),
    ]
    assert exp.terms[2].error is not None
    seen = {p.source: (p.value, p.error) for p in exp.paths}
    assert seen["context.device"] == ("mobile", None)
    assert seen["context.referrer"] == ("https://x.com", None)
    assert seen["profile.counts.view['2w']"][1] is not None
    as_dict = exp.to_dict()
    assert as_dict["paths"][0] == {"source": "context.device", "value": "mobile"}


def test_explain_renders_times_as_json() -> None:
    now = dt.datetime(2026, 11, 26, 10, 5, tzinfo=dt.UTC)
    expr = Expression.compile("now - timestamp(profile.last_seen.view) > duration('1m')")
    exp = expr.explain(activation(profile=make_profile(), now=now))
    assert exp.result is True
    assert exp.to_dict()["paths"] == [
        {"source": "now", "value": "2026-11-26T10:05:00Z"},
        {"source": "profile.last_seen.view", "value": "2026-11-26T10:00:00.000Z"},
    ]
