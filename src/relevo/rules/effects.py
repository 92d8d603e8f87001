"""Running rules inside the apply path, and folding their outcomes into a profile.

Rules run after an event has updated the profile (so "the 4th view in 5 minutes"
sees all four), against the profile rendered as of the event's time. Their state
actions (segments, attributes) and timer operations change the same profile
document, in the same compare-and-set write as the event itself: atomic and
exactly once. Effects outside the document (outbox messages, the index of due
timers) are collected in `Effects` for the applier to write around that write.

Timers fire in event time: before an event is applied, the user's timers that were
due at or before it fire first (at their due time), so a replay of history gives
what living through it gave. Timers of users who stay silent are fired by the
scheduler (`relevo.rules.scheduler`) through a log record, which lands here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from relevo.clock import to_iso
from relevo.features.profile import ArmedTimer, FeatureParams, ProfileState, ProfileView
from relevo.rules.engine import OutboxMessage, RuleOutcome, RuleSet
from relevo.rules.timers import Arm, Cancel, Rearm, Timer, apply_op

TIMER_FIELD = "_timer"
"""Marks a timer-firing record; client events can't carry it (unknown fields are rejected)."""


@dataclass(slots=True)
class Effects:
    """What rules did to one user beyond the profile document."""

    outbox: list[OutboxMessage] = field(default_factory=list)
    armed: dict[str, int] = field(default_factory=dict)  # due-index member -> due time
    disarmed: set[str] = field(default_factory=set)
    outcomes: list[RuleOutcome] = field(default_factory=list)


def timer_member(user_id: str, rule_id: str) -> str:
    """A timer's member in the due index: both ids, unambiguously."""
    return orjson.dumps([user_id, rule_id]).decode()


def parse_timer_member(member: str) -> tuple[str, str]:
    user_id, rule_id = orjson.loads(member)
    return str(user_id), str(rule_id)


def timer_token(timer: ArmedTimer) -> str:
    return f"{timer.armed_by}@{timer.due_at}"


def firing_record(user_id: str, rule_id: str, timer: ArmedTimer) -> dict[str, Any]:
    """The log record that fires one arming of a timer (its id makes it idempotent)."""
    token = timer_token(timer)
    return {
        "event_id": f"timer:{rule_id}:{token}",
        "user_id": user_id,
        "timestamp": timer.due_at,
        TIMER_FIELD: {"rule_id": rule_id, "token": token},
    }


def event_view(record: dict[str, Any], user_id: str, *, timestamp: bool = True) -> dict[str, Any]:
    """The event as rules see it: ISO timestamp, and always a user id (the profile key).

    `timestamp=False` leaves the time as it is stored (epoch ms) for rules that never
    read it: formatting it costs as much as evaluating a condition."""
    if not timestamp:  # the record itself when it already names the user (rules only read)
        return record if record.get("user_id") == user_id else {**record, "user_id": user_id}
    return {**record, "user_id": user_id, "timestamp": to_iso(record["timestamp"])}


def run_event_rules(
    rules: RuleSet,
    state: ProfileState,
    record: dict[str, Any],
    params: FeatureParams,
    effects: Effects,
) -> None:
    """Evaluate the event's rules and plan its timers, after it was applied to `state`."""
    bucket = rules.event_bucket(record["type"])
    timed = rules.timer_rule_ids
    if not bucket.rules and not timed:
        return
    # Timers take the stored epoch ms as they are (`to_epoch_ms`): only rules that read
    # the event's time need it formatted (which their planning would parse back).
    event = event_view(record, state.user_id, timestamp=bucket.event_time)
    if bucket.rules:
        at_ms = record["timestamp"]
        profile = ProfileView(state, at_ms, params)
        context = event.get("context") or {}
        apply_outcome(
            state, rules.run_event_bucket(bucket, profile, event, context, at_ms), effects
        )
    if timed:
        for op in rules.plan_timers(event, armed=state.timers.keys()):
            _apply_timer_op(state, op, effects)


def fire_due_timers(
    rules: RuleSet, state: ProfileState, until_ms: int, params: FeatureParams, effects: Effects
) -> None:
    """Fire, in due order, the timers due at or before `until_ms`."""
    due = sorted((t.due_at, rule_id) for rule_id, t in state.timers.items() if t.due_at <= until_ms)
    for _, rule_id in due:
        fire(rules, state, rule_id, params, effects)


def fire_recorded(
    rules: RuleSet,
    state: ProfileState,
    record: dict[str, Any],
    params: FeatureParams,
    effects: Effects,
) -> None:
    """Apply a timer-firing record: fire only the arming it names (else it's stale)."""
    rule_id, token = record[TIMER_FIELD]["rule_id"], record[TIMER_FIELD]["token"]
    armed = state.timers.get(rule_id)
    if armed is not None and timer_token(armed) == token:
        fire_due_timers(rules, state, armed.due_at - 1, params, effects)  # earlier ones first
        fire(rules, state, rule_id, params, effects)


def fire(
    rules: RuleSet, state: ProfileState, rule_id: str, params: FeatureParams, effects: Effects
) -> None:
    armed = state.timers.pop(rule_id)
    effects.disarmed.add(timer_member(state.user_id, rule_id))
    effects.armed.pop(timer_member(state.user_id, rule_id), None)
    timer = Timer(rule_id, state.user_id, armed.due_at, armed.armed_by, armed.armed_at)
    profile = ProfileView(state, armed.due_at, params)
    apply_outcome(state, rules.on_timer(timer, profile, armed.due_at), effects)


def apply_outcome(state: ProfileState, outcome: RuleOutcome, effects: Effects) -> None:
    effects.outcomes.append(outcome)
    if not outcome.fired:  # the common case: nothing to change, only counts to keep
        return
    for segment in outcome.remove_segments:
        if segment in state.segments:
            state.segments.remove(segment)
    for segment in outcome.add_segments:
        if segment not in state.segments:
            state.segments.append(segment)
    state.attributes.update(outcome.attributes)
    effects.outbox.extend(outcome.outbox)


def _apply_timer_op(state: ProfileState, op: Arm | Rearm | Cancel, effects: Effects) -> None:
    stored = state.timers.get(op.rule_id)
    current = (
        None
        if stored is None
        else Timer(op.rule_id, state.user_id, stored.due_at, stored.armed_by, stored.armed_at)
    )
    updated = apply_op(current, op)
    member = timer_member(state.user_id, op.rule_id)
    if updated is None:
        if stored is not None:
            del state.timers[op.rule_id]
            effects.disarmed.add(member)
            effects.armed.pop(member, None)
        return
    state.timers[op.rule_id] = ArmedTimer(
        updated.due_at_ms, updated.armed_by_event_id, updated.armed_at_ms
    )
    effects.armed[member] = updated.due_at_ms
    effects.disarmed.discard(member)
