"""``POST /v1/rules/test``: what a rule set would do, without doing it.

Given a rule set (or the active one), a user id (their stored profile) or a profile
document, and an event and/or a placement with its request context and candidate
items, it runs exactly the code of live traffic on a copy and reports what fired,
what would change, which timers would be armed, how items would be reordered, and
why each rule matched or not (the values its condition saw). Nothing is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relevo import catalog
from relevo.errors import InvalidInput
from relevo.events import event_record, invalid_from, parse_event, profile_key
from relevo.features.profile import ProfileState, apply_event, decode, render
from relevo.rules.effects import Effects, event_view, fire_due_timers, run_event_rules
from relevo.rules.engine import ItemAdjustments, RuleOutcome, RuleSet
from relevo.rules.model import RuleSetValidationError
from relevo.rules.outbox import action_body
from relevo.store import keys
from relevo.store.base import DocRead

if TYPE_CHECKING:
    from relevo.engine import Engine


class RuleTest(BaseModel):
    """The request body."""

    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] | None = Field(None, description="Rules to test (default: active).")
    user_id: str | None = Field(None, description="Use this user's stored profile.")
    profile: dict[str, Any] | None = Field(None, description="Or this profile document.")
    event: dict[str, Any] | None = Field(None, description="An event to run event rules on.")
    placement: str | None = Field(None, description="A placement to run decision rules for.")
    context: dict[str, Any] = Field(default_factory=dict, description="Request context.")
    items: list[str | dict[str, Any]] = Field(
        default_factory=list, description="Candidates: item ids (from the catalog) or items."
    )


def rule_set_error(error: RuleSetValidationError) -> InvalidInput:
    """A 422 naming the first problem, with every problem listed."""
    first = error.issues[0]
    where = f"rules[{first.rule_id}]" if first.rule_id else "rules"
    problem = InvalidInput(
        str(error), field=f"{where}.{first.field}" if first.field else where, code="invalid_rules"
    )
    problem.details = [issue.model_dump() for issue in error.issues]
    return problem


async def run(engine: Engine, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        request = RuleTest.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error) from None
    rules = engine.rules.current
    if request.rules is not None:
        try:
            rules = RuleSet.from_dict({"rules": request.rules}, "test")
        except RuleSetValidationError as error:
            raise rule_set_error(error) from None
    now = engine.clock.now_ms()
    state = await _state(engine, request)
    result: dict[str, Any] = {"version": rules.version}

    profile = request.profile
    if request.event is not None:
        record = event_record(parse_event(request.event, engine.limits(), "event"), now)
        if state is None and request.profile is None:
            state = ProfileState(user_id=profile_key(record))
        await catalog.enrich(engine.store, [record])
        if state is not None:
            effects = Effects()
            fire_due_timers(rules, state, record["timestamp"], engine.params, effects)
            apply_event(state, record, engine.params)
            run_event_rules(rules, state, record, engine.params, effects)
            profile = render(state, record["timestamp"], engine.params)
            result["event"] = _effects(effects, state)
        else:
            assert profile is not None
            outcome = rules.on_event(profile, event_view(record, profile_key(record)))
            result["event"] = _outcome(outcome)
        event = event_view(record, profile_key(record))
        result["explain"] = [e.to_dict() for e in rules.explain(profile or {}, event)]

    if request.placement is not None:
        if profile is None:
            profile = render(state, now, engine.params) if state is not None else {}
        items = await _items(engine, request.items)
        adjustments = rules.for_decision(
            request.placement, profile, request.context, items, now_ms=now
        )
        result["decision"] = _decision(adjustments, items)
        explained = rules.explain(
            profile, context=request.context, placement=request.placement, now_ms=now
        )
        result.setdefault("explain", []).extend(e.to_dict() for e in explained)
    return result


async def _state(engine: Engine, request: RuleTest) -> ProfileState | None:
    if request.user_id is None:
        return None
    (doc,) = await engine.store.docs_read(
        [DocRead(keys.profile_key(request.user_id), keys.profile_marks_key(request.user_id))]
    )
    return (
        decode(doc.value, engine.store.dictionaries)
        if doc.value is not None
        else ProfileState(user_id=request.user_id)
    )


async def _items(engine: Engine, given: list[str | dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [entry for entry in given if isinstance(entry, str)]
    found = await catalog.get_items(engine.store, ids)
    items = []
    for entry in given:
        if isinstance(entry, dict):
            items.append(entry)
        elif entry in found:
            items.append(found[entry])
        else:
            raise InvalidInput(f"no item {entry!r} in the catalog", field="items", code="not_found")
    return items


def _outcome(outcome: RuleOutcome) -> dict[str, Any]:
    return {
        "fired": list(outcome.fired_ids),
        "add_segments": list(outcome.add_segments),
        "remove_segments": list(outcome.remove_segments),
        "attributes": dict(outcome.attributes),
        "actions": [action_body(m) for m in outcome.outbox],
        "errors": [
            {"rule_id": e.rule_id, "field": e.field, "kind": e.kind, "message": e.message}
            for e in outcome.errors
        ],
    }


def _effects(effects: Effects, state: ProfileState) -> dict[str, Any]:
    merged: dict[str, Any] = {"fired": [], "actions": [], "errors": []}
    for outcome in effects.outcomes:
        found = _outcome(outcome)
        merged["fired"] += found["fired"]
        merged["errors"] += found["errors"]
    merged["actions"] = [action_body(m) for m in effects.outbox]
    merged["segments"] = list(state.segments)
    merged["attributes"] = dict(state.attributes)
    merged["timers"] = {
        rule_id: {"due_at": t.due_at, "armed_by": t.armed_by} for rule_id, t in state.timers.items()
    }
    return merged


def _decision(adjustments: ItemAdjustments, items: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = [(str(item["item_id"]), float(len(items) - i)) for i, item in enumerate(items)]
    return {
        "variant": adjustments.variant,
        "variant_rule": adjustments.variant_rule,
        "applied": list(adjustments.applied),
        "items": adjustments.apply(ranked),
        "removed": dict(adjustments.removed),
        "errors": [
            {"rule_id": e.rule_id, "field": e.field, "kind": e.kind, "message": e.message}
            for e in adjustments.errors
        ],
    }
