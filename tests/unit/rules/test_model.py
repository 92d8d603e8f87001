"""Rule models: accepted shapes, and validation messages that name the rule and the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relevo.rules.model import (
    AddSegment,
    Boost,
    DecisionTrigger,
    Emit,
    EventTrigger,
    Filter,
    Pin,
    RuleSetValidationError,
    SetAttribute,
    TimerTrigger,
    Variant,
    parse_duration_ms,
    parse_rule,
    parse_rule_set,
)

BURST: dict[str, Any] = {
    "id": "electronics-burst",
    "trigger": {"on": "view"},
    "when": "profile.category_counts.view['electronics']['5m'] > 3",
    "then": [{"add_segment": "electronics-burst"}],
}
ABANDON: dict[str, Any] = {
    "id": "cart-abandoned",
    "trigger": {"after": "add_to_cart", "inactive_for": "15m", "unless": ["purchase"]},
    "then": [{"emit": "cart_abandoned"}],
}


def issues_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(RuleSetValidationError) as info:
        parse_rule_set(data)
    return [str(i) for i in info.value.issues]


def with_rule(**changes: Any) -> dict[str, Any]:
    return {"rules": [{**BURST, **changes}]}


def test_the_issue_examples_validate() -> None:
    spec = parse_rule_set({"rules": [BURST, ABANDON]})
    burst, abandon = spec.rules
    assert isinstance(burst.trigger, EventTrigger)
    assert burst.kind == "event"
    assert burst.then == (AddSegment(add_segment="electronics-burst"),)
    assert isinstance(abandon.trigger, TimerTrigger)
    assert abandon.kind == "timer"
    assert abandon.trigger.inactive_for_ms == 15 * 60_000
    assert abandon.then == (Emit(emit="cart_abandoned"),)


def test_every_action_shape() -> None:
    state = parse_rule(
        {
            "id": "s",
            "trigger": {"on": "*"},
            "then": [
                {"add_segment": "a"},
                {"remove_segment": "b"},
                {"set_attribute": {"name": "tier", "value": "gold"}},
                {"set_attribute": {"name": "last_category", "expr": "event.category"}},
                {"set_attribute": {"name": "cleared", "value": None}},
                {"emit": "hello", "payload": {"channel": "email", "n": [1, 2]}},
            ],
        }
    )
    assert isinstance(state.then[2], SetAttribute)
    assert state.then[4] == SetAttribute.model_validate(
        {"set_attribute": {"name": "cleared", "value": None}}
    )
    decide = parse_rule(
        {
            "id": "d",
            "trigger": {"on": "decide", "placement": "home_hero"},
            "then": [
                {"filter": "item.in_stock", "on_error": "drop"},
                {"boost": "item.category == 'electronics'", "by": 2.5},
                {"bury": "item.price > 500.0"},
                {"pin": ["sku1", "sku2"], "position": 1},
                {"variant": "B"},
            ],
        }
    )
    assert isinstance(decide.trigger, DecisionTrigger)
    assert decide.kind == "decide"
    assert isinstance(decide.then[0], Filter)
    assert decide.then[0].on_error == "drop"
    assert isinstance(decide.then[1], Boost)
    assert decide.then[1].by == 2.5
    assert decide.then[3] == Pin(pin=("sku1", "sku2"), position=1)
    assert decide.then[4] == Variant(variant="B")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30s", 30_000),
        ("15m", 900_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("1h30m", 5_400_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["15", "15 minutes", "m", "-5m", "0s", "1.5h", "", "15M"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(text)


@given(parts=st.lists(st.tuples(st.integers(1, 10_000), st.sampled_from("smhd")), min_size=1))
def test_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    unit = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration_ms(text) == sum(n * unit[u] for n, u in parts)


# ------------------------------------------------------------------------------ messages


def test_bad_duration_names_rule_and_field() -> None:
    bad = {**ABANDON, "trigger": {**ABANDON["trigger"], "inactive_for": "15 minutes"}}
    [msg] = issues_of({"rules": [bad]})
    assert msg.startswith("rule 'cart-abandoned': trigger.inactive_for: invalid duration")


def test_bad_action_parameter_names_rule_and_action_index() -> None:
    rule = {
        "id": "boosty",
        "trigger": {"on": "decide", "placement": "home"},
        "then": [{"variant": "A"}, {"boost": "item.in_stock", "by": -1}],
    }
    assert issues_of({"rules": [rule]}) == [
        "rule 'boosty': then[1].by: 'by' must be a positive finite number"
    ]


def test_unknown_action_key_and_extra_key_are_rejected() -> None:
    msgs = issues_of(with_rule(then=[{"add_segmnt": "x"}, {"emit": "x", "payloads": {}}]))
    assert msgs[0].startswith("rule 'electronics-burst': then[0]: an action needs exactly one of")
    assert msgs[1] == "rule 'electronics-burst': then[1].payloads: Extra inputs are not permitted"


def test_two_action_keys_in_one_object_are_rejected() -> None:
    rule = {
        "id": "two",
        "trigger": {"on": "decide", "placement": "home"},
        "then": [{"boost": "item.in_stock", "bury": "item.in_stock"}],
    }
    [msg] = issues_of({"rules": [rule]})
    assert msg.startswith("rule 'two': then[0]: an action needs exactly one of")


def test_cel_errors_in_when_carry_position() -> None:
    with pytest.raises(RuleSetValidationError) as info:
        parse_rule_set(with_rule(when="profile.segments.size() > 0 &&\n nope(1)"))
    [issue] = info.value.issues
    assert (issue.rule_id, issue.field, issue.line, issue.column) == (
        "electronics-burst",
        "when",
        2,
        2,
    )
    assert "unknown function 'nope'" in issue.message


def test_cel_errors_in_item_actions_name_the_action() -> None:
    rule = {
        "id": "f",
        "trigger": {"on": "decide", "placement": "home"},
        "then": [{"filter": "item.in_stock &&"}],
    }
    [msg] = issues_of({"rules": [rule]})
    assert msg.startswith("rule 'f': then[0].filter: ")
    assert msg.endswith("at 1:17")


def test_item_is_only_visible_to_item_actions() -> None:
    rule = {
        "id": "d",
        "trigger": {"on": "decide", "placement": "home"},
        "when": "item.in_stock",
        "then": [{"variant": "B"}],
    }
    [msg] = issues_of({"rules": [rule]})
    assert msg.startswith("rule 'd': when: unknown variable 'item'")
    [msg] = issues_of(with_rule(when="placement == 'home'"))
    assert "unknown variable 'placement'" in msg


def test_actions_must_fit_the_trigger() -> None:
    [msg] = issues_of(with_rule(then=[{"add_segment": "x"}, {"boost": "item.in_stock"}]))
    assert msg.startswith(
        "rule 'electronics-burst': then[1]: boost is not allowed in event and timer rules"
    )
    decision = {
        "id": "d",
        "trigger": {"on": "decide", "placement": "home"},
        "then": [{"emit": "x"}],
    }
    [msg] = issues_of({"rules": [decision]})
    assert "emit is not allowed in decision rules" in msg


def test_trigger_shapes_are_checked() -> None:
    [msg] = issues_of(with_rule(trigger={"onn": "view"}))
    assert msg.startswith("rule 'electronics-burst': trigger: a trigger is")
    [msg] = issues_of(with_rule(trigger={"on": "decide"}))
    assert "'decide' is reserved for decision triggers" in msg
    [msg] = issues_of(with_rule(trigger={"on": "view", "every": "5m"}))
    assert msg == "rule 'electronics-burst': trigger.every: Extra inputs are not permitted"
    loop = {**ABANDON, "trigger": {"after": "view", "inactive_for": "1m", "unless": ["view"]}}
    [msg] = issues_of({"rules": [loop]})
    assert "'after' event 'view' cannot also be in 'unless'" in msg


def test_rules_without_actions_or_id_are_located() -> None:
    [msg] = issues_of(with_rule(then=[]))
    assert msg == "rule 'electronics-burst': then: a rule needs at least one action"
    no_id = {k: v for k, v in BURST.items() if k != "id"}
    assert issues_of({"rules": [BURST, no_id]}) == ["rule set: rules[1].id: Field required"]


def test_duplicate_ids_are_rejected() -> None:
    assert issues_of({"rules": [BURST, BURST]}) == [
        "rule 'electronics-burst': id: duplicate rule id 'electronics-burst'"
    ]


def test_set_attribute_needs_exactly_one_source() -> None:
    [msg] = issues_of(with_rule(then=[{"set_attribute": {"name": "tier"}}]))
    assert msg == (
        "rule 'electronics-burst': then[0].set_attribute: "
        "set_attribute needs exactly one of 'value' or 'expr'"
    )


def test_json_text_is_accepted_and_reported_the_same_way() -> None:
    text = '{"rules": [{"id": "j", "trigger": {"on": "view"}, "then": [{"emit": ""}]}]}'
    with pytest.raises(RuleSetValidationError) as info:
        parse_rule_set(text)
    [issue] = info.value.issues
    assert (issue.rule_id, issue.field) == ("j", "then[0].emit")


def test_models_are_immutable() -> None:
    rule = parse_rule(BURST)
    with pytest.raises(ValueError, match="frozen"):
        rule.id = "other"  # type: ignore[misc]
