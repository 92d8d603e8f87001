"""The timer planner: arm, push back, cancel -- as data, on event time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relevo.rules.engine import RuleSet
from relevo.rules.timers import (
    Arm,
    Cancel,
    Rearm,
    Timer,
    TimerOp,
    apply_op,
    due,
    from_epoch_ms,
    timer_key,
    to_epoch_ms,
)

from .builders import T0_MS, make_event, make_profile

MIN = 60_000
ABANDON: dict[str, Any] = {
    "id": "cart-abandoned",
    "trigger": {"after": "add_to_cart", "inactive_for": "15m", "unless": ["purchase"]},
    "when": "size(profile.cart) > 0",
    "then": [{"emit": "cart_abandoned", "payload": {"channel": "email"}}],
}


def rules(*extra: dict[str, Any]) -> RuleSet:
    return RuleSet.from_dict({"rules": [ABANDON, *extra]}, "v1")


def at(type_: str, minutes: float, event_id: str) -> dict[str, Any]:
    return make_event(type_, event_id=event_id, timestamp=T0_MS + int(minutes * MIN))


def run(rs: RuleSet, events: list[dict[str, Any]]) -> Timer | None:
    timer: Timer | None = None
    for event in events:
        for op in rs.plan_timers(event):
            if op.rule_id == "cart-abandoned":
                timer = apply_op(timer, op)
    return timer


def test_add_to_cart_arms_fifteen_minutes_later() -> None:
    [op] = rules().plan_timers(at("add_to_cart", 0, "e1"))
    assert op == Arm("cart-abandoned", "u1", T0_MS + 15 * MIN, "e1", T0_MS)
    assert op.key == "timer:{u1}:cart-abandoned"


def test_later_activity_pushes_the_deadline_back() -> None:
    rs = rules()
    armed = run(rs, [at("add_to_cart", 0, "e1")])
    [op] = rs.plan_timers(at("view", 5, "e2"))
    assert op == Rearm("cart-abandoned", "u1", T0_MS + 20 * MIN, "e2", T0_MS + 5 * MIN)
    pushed = apply_op(armed, op)
    assert pushed == Timer("cart-abandoned", "u1", T0_MS + 20 * MIN, "e1", T0_MS)
    assert armed is not None
    assert pushed is not None
    assert pushed.token != armed.token  # a worker holding the old token can no longer fire it


def test_purchase_cancels() -> None:
    rs = rules()
    [op] = rs.plan_timers(at("purchase", 3, "e3"))
    assert op == Cancel("cart-abandoned", "u1", "e3", T0_MS + 3 * MIN)
    timer = run(rs, [at("add_to_cart", 0, "e1"), at("view", 1, "e2"), at("purchase", 3, "e3")])
    assert timer is None


def test_activity_without_a_timer_arms_nothing() -> None:
    assert apply_op(None, Rearm("cart-abandoned", "u1", T0_MS, "e", T0_MS)) is None


def test_due_includes_the_deadline() -> None:
    timer = Timer("cart-abandoned", "u1", T0_MS + 15 * MIN, "e1", T0_MS)
    assert not due(timer, T0_MS + 15 * MIN - 1)
    assert due(timer, T0_MS + 15 * MIN)
    assert due(timer, T0_MS + 60 * MIN)


def test_timer_key_is_deterministic_per_rule_and_user() -> None:
    assert timer_key("r", "u1") == timer_key("r", "u1") == "timer:{u1}:r"
    assert len({timer_key("r", "u1"), timer_key("r", "u2"), timer_key("s", "u1")}) == 3
    timer = Timer("r", "u1", 5, "e", 1)
    assert timer.key == timer_key("r", "u1")
    assert Timer.from_dict(timer.to_dict()) == timer


def test_reset_on_narrows_which_events_push_back() -> None:
    narrow = {
        **ABANDON,
        "id": "narrow",
        "trigger": {**ABANDON["trigger"], "reset_on": ["view"]},
    }
    never = {**ABANDON, "id": "never", "trigger": {**ABANDON["trigger"], "reset_on": []}}
    rs = rules(narrow, never)
    assert {op.rule_id for op in rs.plan_timers(at("click", 1, "c"))} == {"cart-abandoned"}
    assert {op.rule_id for op in rs.plan_timers(at("view", 1, "v"))} == {
        "cart-abandoned",
        "narrow",
    }
    assert {type(op) for op in rs.plan_timers(at("purchase", 1, "p"))} == {Cancel}


def test_known_armed_timers_limit_rearm_and_cancel_ops() -> None:
    other = {**ABANDON, "id": "other"}
    rs = rules(other)
    assert {op.rule_id for op in rs.plan_timers(at("view", 1, "v"))} == {"cart-abandoned", "other"}
    assert [op.rule_id for op in rs.plan_timers(at("view", 1, "v"), armed={"other"})] == ["other"]
    assert rs.plan_timers(at("purchase", 1, "p"), armed=()) == ()
    arms = rs.plan_timers(at("add_to_cart", 1, "a"), armed=())
    assert [type(op) for op in arms] == [Arm, Arm]  # arming never depends on the armed set


def test_after_any_event_is_an_inactivity_timer() -> None:
    idle = {
        "id": "idle",
        "trigger": {"after": "*", "inactive_for": "30m", "unless": ["logout"]},
        "then": [{"emit": "session_idle"}],
    }
    rs = RuleSet.from_dict({"rules": [idle]}, "v1")
    assert rs.plan_timers(at("search", 0, "s")) == (
        Arm("idle", "u1", T0_MS + 30 * MIN, "s", T0_MS),
    )
    assert rs.plan_timers(at("logout", 1, "l")) == (Cancel("idle", "u1", "l", T0_MS + MIN),)


def test_events_without_user_or_time_plan_nothing() -> None:
    rs = rules()
    assert rs.plan_timers({**at("add_to_cart", 0, "e"), "user_id": None}) == ()
    assert rs.plan_timers({**at("add_to_cart", 0, "e"), "timestamp": "yesterday"}) == ()
    assert rs.plan_timers({**at("add_to_cart", 0, "e"), "timestamp": "2026-11-26T10:00:00"}) == ()


def test_a_late_older_purchase_does_not_cancel_a_newer_cart() -> None:
    timer = apply_op(None, Arm("cart-abandoned", "u1", T0_MS + 20 * MIN, "e2", T0_MS + 5 * MIN))
    assert apply_op(timer, Cancel("cart-abandoned", "u1", "p", T0_MS)) == timer


def test_a_late_older_event_never_pulls_the_deadline_earlier() -> None:
    timer = Timer("cart-abandoned", "u1", T0_MS + 30 * MIN, "e2", T0_MS + 15 * MIN)
    assert apply_op(timer, Rearm("cart-abandoned", "u1", T0_MS + 20 * MIN, "v", 0)) == timer
    older_arm = Arm("cart-abandoned", "u1", T0_MS + 15 * MIN, "e1", T0_MS)
    assert apply_op(timer, older_arm) == timer


def test_epoch_ms_conversions() -> None:
    assert to_epoch_ms("2026-11-26T10:00:00.000Z") == T0_MS
    assert to_epoch_ms("2026-11-26T11:00:00.000+01:00") == T0_MS
    assert to_epoch_ms(from_epoch_ms(T0_MS + 7)) == T0_MS + 7
    with pytest.raises(TypeError):
        to_epoch_ms(True)


# ---------------------------------------------------------------------------- properties

EVENT_TYPES = ["add_to_cart", "view", "click", "purchase"]


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """In-order streams for one user: non-decreasing timestamps, unique event ids."""
    gaps = draw(st.lists(st.integers(0, 40 * MIN), max_size=25))
    types = draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=len(gaps), max_size=len(gaps)))
    t, events = T0_MS, []
    for n, (gap, type_) in enumerate(zip(gaps, types, strict=True)):
        t += gap
        events.append(make_event(type_, event_id=f"e{n}", timestamp=t))
    return events


def reference(events: list[dict[str, Any]]) -> Timer | None:
    """Brute force: armed by the last add_to_cart with no purchase after it; the deadline is
    15 minutes after the last event since that arming (every non-purchase event resets)."""
    last_arm = max((k for k, e in enumerate(events) if e["type"] == "add_to_cart"), default=None)
    if last_arm is None:
        return None
    after = events[last_arm:]
    if any(e["type"] == "purchase" for e in after):
        return None
    arm = events[last_arm]
    return Timer(
        "cart-abandoned",
        "u1",
        max(e["timestamp"] for e in after) + 15 * MIN,
        arm["event_id"],
        arm["timestamp"],
    )


@given(events=event_streams())
def test_planner_matches_the_brute_force_reference(events: list[dict[str, Any]]) -> None:
    assert run(rules(), events) == reference(events)


@given(events=event_streams())
def test_applying_each_event_twice_changes_nothing(events: list[dict[str, Any]]) -> None:
    """At-least-once delivery: a redelivered event yields the same timer."""
    rs = rules()
    twice = [e for e in events for _ in range(2)]
    assert run(rs, twice) == run(rs, events)


# ------------------------------------------------------------------------------- firing


def test_firing_evaluates_the_condition_on_the_current_profile() -> None:
    rs = rules()
    timer = run(rs, [at("add_to_cart", 0, "e1")])
    assert timer is not None
    fired = rs.on_timer(timer, make_profile(), now_ms=timer.due_at_ms)
    assert fired.fired_ids == ("cart-abandoned",)
    [msg] = fired.outbox
    assert msg.name == "cart_abandoned"
    assert msg.user_id == "u1"
    assert msg.message_id == f"cart-abandoned:timer:{timer.token}:0"
    again = rs.on_timer(timer, make_profile(), now_ms=timer.due_at_ms + 1)
    assert again.outbox[0].message_id == msg.message_id  # one arming, one message id
    emptied = rs.on_timer(timer, make_profile(cart=[]), now_ms=timer.due_at_ms)
    assert (emptied.evaluated, emptied.fired_ids) == (("cart-abandoned",), ())


def test_timer_event_exposes_the_arming_event() -> None:
    rule = {
        **ABANDON,
        "when": "event.type == 'timer' && event.armed_by.item_id == 'sku1' "
        "&& now == timestamp(event.due_at)",
    }
    rs = RuleSet.from_dict({"rules": [rule]}, "v1")
    arming = at("add_to_cart", 0, "e1") | {"item_id": "sku1"}
    [op] = rs.plan_timers(arming)
    assert isinstance(op, Arm)
    timer = apply_op(None, op)
    assert timer is not None
    outcome = rs.on_timer(timer, make_profile(), timer.due_at_ms, armed_by=arming)
    assert outcome.fired_ids == ("cart-abandoned",)


def test_a_timer_of_a_removed_rule_does_nothing() -> None:
    timer = Timer("gone", "u1", T0_MS, "e1", T0_MS)
    outcome = rules().on_timer(timer, make_profile(), T0_MS)
    assert outcome.evaluated == ()


def test_ops_are_plain_frozen_data() -> None:
    op: TimerOp = Arm("r", "u", 1, "e", 0)
    with pytest.raises(AttributeError):
        op.user_id = "other"  # type: ignore[misc]
