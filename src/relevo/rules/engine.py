"""The compiled rule set: which rules an event or a decision triggers, and what they do.

Why it looks like this:

* **Compiled once, immutable, versioned.** A :class:`RuleSet` is built from a validated spec and
  a caller-given ``version``; it never changes, so the core can swap a new version in with one
  reference assignment while requests keep using the old one, and every outcome names the
  version that produced it.
* **Indexed by trigger.** With a thousand rules, an event must only evaluate the rules that can
  match its type (plus ``"*"`` rules); a decision only the rules of its placement (plus ``"*"``).
* **Converted once.** Converting the profile to CEL values costs far more than evaluating a
  condition, so each event builds one :class:`Activation` for all its candidate rules, holding
  only the profile fields those rules read (found when compiling).
* **Never raises.** A rule that fails at run time is recorded as a :class:`RuleError` and
  skipped; the other rules still run. The core counts errors per rule via
  :class:`RuleStatsBook`.
* **Pure.** Outcomes are data (segments to add or remove, attributes to set, outbox messages,
  item adjustments); the core applies them to the store. Rules see the profile as it was
  *before* this event's rule actions, so rules never chain within one event and their order
  cannot change what fires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, JsonValue

from relevo.features.profile import ProfileView
from relevo.rules import item_loop
from relevo.rules.codegen import NOW_MS, generate_bucket
from relevo.rules.expressions import (
    Activation,
    ActivationError,
    Explanation,
    Expression,
    ExpressionEvaluationError,
    Projection,
    Scope,
    jsonable,
)
from relevo.rules.fastpath import Err
from relevo.rules.model import (
    DECISION_ROOTS,
    EVENT_ROOTS,
    ITEM_ROOTS,
    AddSegment,
    Boost,
    Bury,
    DecisionTrigger,
    Emit,
    EventTrigger,
    Filter,
    Pin,
    RemoveSegment,
    Rule,
    RuleSetSpec,
    SetAttribute,
    TimerTrigger,
    Variant,
    action_kind,
    parse_rule_set,
)
from relevo.rules.timers import Timer, TimerOp, TimerPlanner, from_epoch_ms, to_epoch_ms

# ---------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class RuleError:
    """A rule that failed at run time; ``count`` > 1 when the same failure hit many items."""

    rule_id: str
    field: str
    kind: str
    message: str
    count: int = 1


@dataclass(slots=True)
class FiredRule:
    """A rule whose condition held, with the actions it contributed."""

    rule_id: str
    actions: tuple[BaseModel, ...]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message for the outbox. ``message_id`` is deterministic (rule + cause), so replaying
    the same event or firing the same timer arming twice yields the same id: dedupe on it."""

    message_id: str
    name: str
    rule_id: str
    user_id: str | None
    payload: Mapping[str, JsonValue]
    at_ms: int | None
    cause: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "name": self.name,
            "rule_id": self.rule_id,
            "user_id": self.user_id,
            "payload": dict(self.payload),
            "at_ms": self.at_ms,
            "cause": self.cause,
        }


_NO_ATTRIBUTES: Mapping[str, JsonValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True, eq=False)
class OutcomePattern:
    """What a bucket's rules decided, whatever the event's time: the same for every event
    whose conditions gave the same values. Outcomes of one pattern share it, and the
    statistics count it by identity (an event then costs one count, not one per rule)."""

    evaluated: tuple[str, ...]
    fired: tuple[FiredRule, ...]
    errors: tuple[RuleError, ...]
    add_segments: tuple[str, ...]
    remove_segments: tuple[str, ...]
    attributes: Mapping[str, JsonValue]


_PATTERNS = 256
"""Outcome patterns kept per bucket: a few (which keys the profile lacks yet, which rules
hold) cover nearly every event; the bound keeps odd ones from growing it."""


@dataclass(slots=True)
class _Effects:
    """What the rules that fired for one event do, gathered (only once one fires)."""

    fired: list[FiredRule] = dataclasses.field(default_factory=list)
    segments: dict[str, bool] = dataclasses.field(default_factory=dict)
    attributes: dict[str, JsonValue] = dataclasses.field(default_factory=dict)
    outbox: list[OutboxMessage] = dataclasses.field(default_factory=list)


@dataclass(slots=True)
class RuleOutcome:
    """What the rules decided for one event (or one fired timer), as data for the core.

    Read-only by convention, not frozen: one is built per event, and building a frozen
    dataclass costs four times as much (each field set through ``object.__setattr__``).
    """

    version: str
    at_ms: int | None
    evaluated: tuple[str, ...]
    fired: tuple[FiredRule, ...]
    errors: tuple[RuleError, ...]
    add_segments: tuple[str, ...] = ()
    remove_segments: tuple[str, ...] = ()
    attributes: Mapping[str, JsonValue] = dataclasses.field(default_factory=lambda: _NO_ATTRIBUTES)
    outbox: tuple[OutboxMessage, ...] = ()
    pattern: OutcomePattern | None = None
    """Set when the outcome is a recurring one (no outbox messages, nothing computed)."""

    @property
    def fired_ids(self) -> tuple[str, ...]:
        return tuple(f.rule_id for f in self.fired)


@dataclass(frozen=True, slots=True)
class PinnedItem:
    item_id: str
    position: int
    rule_id: str


@dataclass(frozen=True, slots=True)
class ItemAdjustments:
    """How decision rules shape one placement's candidates; :meth:`apply` does the reordering.

    ``item_rules`` says which rules touched each item, so a decision can record why an item
    moved and the core can attribute clicks and conversions to rules.
    """

    placement: str
    version: str
    at_ms: int | None
    evaluated: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()
    errors: tuple[RuleError, ...] = ()
    removed: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    multipliers: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    buried: frozenset[str] = frozenset()
    pins: tuple[PinnedItem, ...] = ()
    variant: str | None = None
    variant_rule: str | None = None
    item_rules: Mapping[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    def apply(self, ranked: Sequence[tuple[str, float]]) -> list[str]:
        """Filter, boost, bury and pin a scored candidate list; returns item ids in order.

        Order of operations: filtered items go; scores are multiplied by boosts and re-sorted
        (stable, so equal scores keep the model's order); buried items move after all others;
        pinned items are placed at their slots, first rule first. A pin never resurrects a
        filtered item and never adds an item that is not a candidate: the pipeline includes
        :meth:`RuleSet.pinned_items` in the candidates up front.
        """
        # Each step only when its rules did something (it runs for every decision, over
        # ~50 candidates, and most decisions' rules boost, bury and pin nothing).
        removed, multipliers, buried = self.removed, self.multipliers, self.buried
        if multipliers:
            boost = multipliers.get
            kept = [(i, s * boost(i, 1.0)) for i, s in ranked if i not in removed]
        else:  # (no score times 1.0: the same scores)
            kept = [(i, s) for i, s in ranked if i not in removed] if removed else list(ranked)
        kept.sort(key=lambda pair: -pair[1])
        if buried:
            order = [i for i, _ in kept if i not in buried]
            order += [i for i, _ in kept if i in buried]
        else:
            order = [i for i, _ in kept]
        if not self.pins:
            return order
        present = set(order)
        placed: dict[str, int] = {}
        for pin in self.pins:
            if pin.item_id in present and pin.item_id not in placed:
                placed[pin.item_id] = pin.position
        rest = [i for i in order if i not in placed]
        for item_id, pos in sorted(placed.items(), key=lambda kv: kv[1]):
            rest.insert(min(pos, len(rest)), item_id)
        return rest


# ------------------------------------------------------------------------------- stats


@dataclass(slots=True)
class RuleStats:
    """Counters for one rule; plain data so the core can persist and sum them across workers.

    ``evaluations``: times the rule was considered (its trigger matched); ``fires``: times its
    condition held; ``errors``: evaluations that hit at least one runtime error.
    """

    evaluations: int = 0
    fires: int = 0
    errors: int = 0
    last_fired_ms: int | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleStats:
        return cls(**{f.name: data.get(f.name, f.default) for f in dataclasses.fields(cls)})


class RuleStatsBook:
    """Per-rule statistics accumulated from outcomes (mutable, unlike the rule set).

    Recording is on the hot path (every event that evaluates rules), so it only counts
    outcomes by their tuple of evaluated rules (one tuple per trigger bucket) and notes
    fires and errors; the per-rule sums are made when read.
    """

    __slots__ = ("_errors", "_evaluated", "_fires", "_last_fired", "_patterns", "_stats")

    def __init__(self, stats: Mapping[str, RuleStats] | None = None) -> None:
        self._stats: dict[str, RuleStats] = dict(stats or {})
        # by the identity of the tuple (a bucket's, kept alive here): hashing ten ids
        # on every event would cost more than the count
        self._evaluated: dict[int, list[Any]] = {}
        self._patterns: dict[int, list[Any]] = {}  # the same: [pattern, count, last time]
        self._fires: dict[str, int] = {}
        self._last_fired: dict[str, int] = {}
        self._errors: dict[str, list[Any]] = {}  # rule id -> [count, last error]

    def record(self, outcome: RuleOutcome | ItemAdjustments) -> None:
        if type(outcome) is RuleOutcome and outcome.pattern is not None:
            # a recurring outcome: one count, summed per rule when read
            pattern, at_ms = outcome.pattern, outcome.at_ms
            counted = self._patterns.get(id(pattern))
            if counted is None:
                self._patterns[id(pattern)] = [pattern, 1, at_ms]
            else:
                counted[1] += 1
                if (
                    at_ms is not None
                    and pattern.fired
                    and (counted[2] is None or at_ms > counted[2])
                ):
                    counted[2] = at_ms
            return
        evaluated = outcome.evaluated
        counted = self._evaluated.get(id(evaluated))
        if counted is None:
            self._evaluated[id(evaluated)] = [evaluated, 1]
        else:
            counted[1] += 1
        fired: Sequence[str]
        if isinstance(outcome, RuleOutcome):
            fired = [f.rule_id for f in outcome.fired] if outcome.fired else ()
        else:
            fired = outcome.applied
        for rule_id in fired:
            self._fires[rule_id] = self._fires.get(rule_id, 0) + 1
            if outcome.at_ms is not None:
                self._last_fired[rule_id] = max(
                    self._last_fired.get(rule_id, outcome.at_ms), outcome.at_ms
                )
        if outcome.errors:
            self._count_errors(outcome.errors, 1, grouped=type(outcome) is RuleOutcome)

    def _count_errors(self, errors: Sequence[RuleError], times: int, *, grouped: bool) -> None:
        """Count each rule once, with its first error. An event's errors come rule by
        rule (`grouped`), so comparing with the previous one is enough; a decision's
        are grouped by item condition, and need a set."""
        seen: set[str] = set()
        previous = None
        for err in errors:
            rule_id = err.rule_id
            if grouped:
                if rule_id == previous:
                    continue
                previous = rule_id
            elif rule_id in seen:
                continue
            else:
                seen.add(rule_id)
            entry = self._errors.get(rule_id)
            if entry is None:
                self._errors[rule_id] = [times, err]
            else:
                entry[0] += times
                entry[1] = err

    def _fold(self) -> dict[str, RuleStats]:
        """Add what was recorded since the last read to the per-rule statistics."""
        stats = self._stats
        patterns, self._patterns = self._patterns, {}
        for pattern, count, last in patterns.values():
            counted = self._evaluated.setdefault(id(pattern.evaluated), [pattern.evaluated, 0])
            counted[1] += count
            for fired in pattern.fired:
                self._fires[fired.rule_id] = self._fires.get(fired.rule_id, 0) + count
                if last is not None:
                    previous = self._last_fired.get(fired.rule_id, last)
                    self._last_fired[fired.rule_id] = max(previous, last)
            self._count_errors(pattern.errors, count, grouped=True)
        for evaluated, count in self._evaluated.values():
            for rule_id in evaluated:
                s = stats.get(rule_id)
                if s is None:
                    s = stats[rule_id] = RuleStats()
                s.evaluations += count
        for rule_id, fires in self._fires.items():
            s = stats.setdefault(rule_id, RuleStats())
            s.fires += fires
            last = self._last_fired.get(rule_id)
            if last is not None:
                s.last_fired_ms = max(s.last_fired_ms or last, last)
        for rule_id, (failures, err) in self._errors.items():
            s = stats.setdefault(rule_id, RuleStats())
            s.errors += failures
            s.last_error = f"{err.field}: {err.kind}: {err.message}"
        self._evaluated, self._fires, self._last_fired, self._errors = {}, {}, {}, {}
        return stats

    def get(self, rule_id: str) -> RuleStats:
        return self._fold().get(rule_id, RuleStats())

    def merge(self, other: RuleStatsBook) -> None:
        """Add another book's counts to this one (e.g. counts whose flush failed)."""
        mine_all = self._fold()
        for rule_id, theirs in other._fold().items():
            mine = mine_all.setdefault(rule_id, RuleStats())
            mine.evaluations += theirs.evaluations
            mine.fires += theirs.fires
            mine.errors += theirs.errors
            if theirs.last_fired_ms is not None:
                mine.last_fired_ms = max(mine.last_fired_ms or 0, theirs.last_fired_ms)
            mine.last_error = mine.last_error or theirs.last_error

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {rule_id: s.to_dict() for rule_id, s in sorted(self._fold().items())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> RuleStatsBook:
        return cls({k: RuleStats.from_dict(v) for k, v in data.items()})


# ---------------------------------------------------------------------------- compiling


@dataclass(frozen=True, slots=True)
class _CompiledAction:
    index: int
    action: BaseModel
    expr: Expression | None  # filter/boost/bury condition, or set_attribute's expr


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its expressions compiled; ``order`` is its index in the rule set."""

    rule: Rule
    order: int
    when: Expression | None
    actions: tuple[_CompiledAction, ...]
    errors: dict[Any, RuleError] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    """The run-time errors seen so far, each recorded once (see `_fast_error`): by the
    `Err` object itself, and by kind and message."""

    @property
    def static(self) -> bool:
        """Whether its actions are the same whatever the event (segments, constant
        attributes), so that an outcome where it fires can recur."""
        return all(
            isinstance(a.action, AddSegment | RemoveSegment)
            or (isinstance(a.action, SetAttribute) and a.expr is None)
            for a in self.actions
        )

    @property
    def id(self) -> str:
        return self.rule.id


def _compile_rule(rule: Rule, order: int) -> CompiledRule:
    decision = isinstance(rule.trigger, DecisionTrigger)
    when = None
    if rule.when is not None:
        roots = DECISION_ROOTS if decision else EVENT_ROOTS
        when = Expression.compile(rule.when, rule_id=rule.id, field="when", roots=roots)
    actions = []
    for i, action in enumerate(rule.then):
        expr = None
        if isinstance(action, Filter | Boost | Bury):
            kind = action_kind(action)
            source = getattr(action, kind)
            expr = Expression.compile(
                source, rule_id=rule.id, field=f"then[{i}].{kind}", roots=ITEM_ROOTS
            )
        elif isinstance(action, SetAttribute) and action.set_attribute.expr is not None:
            expr = Expression.compile(
                action.set_attribute.expr,
                rule_id=rule.id,
                field=f"then[{i}].set_attribute.expr",
                roots=EVENT_ROOTS,
            )
        actions.append(_CompiledAction(i, action, expr))
    return CompiledRule(rule, order, when, tuple(actions))


@dataclass(frozen=True, slots=True)
class Bucket:
    """The rules one trigger value selects, in run order, and the input parts they read."""

    rules: tuple[CompiledRule, ...]
    projection: Projection
    uses_now: bool  # any expression mentions `now`
    now_value: bool  # ... and may read it as a datetime, not only as `NOW_MS`
    ids: tuple[str, ...]
    emits: bool  # any outbox messages (which need the user id and the cause)
    event_time: bool  # any expression may read `event.timestamp` (whole events included)
    evaluate: Callable[[Mapping[str, Any]], list[Any]] | None  # see `generate_bucket`
    patterns: dict[tuple[Any, ...], OutcomePattern] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    """Recurring outcomes, by what `evaluate` gave (see `RuleSet._run_bucket`)."""
    item_loops: dict[tuple[tuple[int, int], ...], item_loop.ItemLoop | None] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    """A decision's item actions as generated loops, by the (rule, action) pairs that run
    (which depend on the rules whose condition held); None: the general loop."""

    @classmethod
    def of(cls, rules: Iterable[CompiledRule]) -> Bucket:
        ordered = tuple(sorted(rules, key=lambda r: (-r.rule.priority, r.order)))
        expressions = [e for r in ordered for e in (r.when, *(a.expr for a in r.actions)) if e]
        uses_now = any("now" in e.variables for e in expressions)
        emits = any(isinstance(a.action, Emit) for r in ordered for a in r.actions)
        ids = tuple(r.id for r in ordered)
        conditions = [None if r.when is None else r.when.fast for r in ordered]
        evaluate, now_value = None, uses_now
        if ordered and all(r.when is None or r.when.fast is not None for r in ordered):
            read_now = ["now" in r.when.variables if r.when else False for r in ordered]
            evaluate, now_value = generate_bucket(conditions, read_now)
            now_value = now_value or any(
                "now" in a.expr.variables for r in ordered for a in r.actions if a.expr
            )
        event_time = any(
            read[0] == "event" and (len(read) == 1 or read[1] == "timestamp")
            for e in expressions
            for read in e.reads
        )
        return cls(
            ordered, _projection(ordered), uses_now, now_value, ids, emits, event_time, evaluate
        )


def _projection(rules: Iterable[CompiledRule]) -> Projection:
    """What the CEL library must be given: the reads of expressions off the fast path."""
    return Projection.of(
        e
        for r in rules
        for e in (r.when, *(a.expr for a in r.actions))
        if e is not None and e.fast is None
    )


def _index(rules: Sequence[CompiledRule], key: str) -> tuple[dict[str, Bucket], Bucket]:
    by_value: dict[str, list[CompiledRule]] = {}
    for r in rules:
        by_value.setdefault(getattr(r.rule.trigger, key), []).append(r)
    wildcard = by_value.pop("*", [])
    index = {value: Bucket.of(rs + wildcard) for value, rs in by_value.items()}
    return index, Bucket.of(wildcard)


# ------------------------------------------------------------------------- explanations


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """Why one rule did or did not match: its condition's values, or the timer op it gets."""

    rule_id: str
    kind: Literal["event", "timer", "decide"]
    matched: bool | None
    reason: str
    condition: Explanation | None = None
    actions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "matched": self.matched,
            "reason": self.reason,
            "condition": None if self.condition is None else self.condition.to_dict(),
            "actions": list(self.actions),
        }


# ------------------------------------------------------------------------------ the set


class RuleSet:
    """An immutable, compiled, indexed rule set. Build with :meth:`compile`/:meth:`from_dict`."""

    __slots__ = (
        "_decide_any",
        "_decide_index",
        "_event_any",
        "_event_index",
        "_rules",
        "_timer_rules",
        "_timers",
        "spec",
        "timer_rule_ids",
        "version",
    )

    def __init__(self, spec: RuleSetSpec, version: str) -> None:
        """Compile ``spec``; raises ``ExpressionCompileError`` if an expression is invalid
        (cannot happen for a spec from :func:`parse_rule_set`, which compiles them too)."""
        self.version = version
        self.spec = spec
        compiled = [_compile_rule(r, i) for i, r in enumerate(spec.rules) if r.enabled]
        self._rules: Mapping[str, CompiledRule] = MappingProxyType({r.id: r for r in compiled})
        events = [r for r in compiled if isinstance(r.rule.trigger, EventTrigger)]
        decisions = [r for r in compiled if isinstance(r.rule.trigger, DecisionTrigger)]
        self._event_index, self._event_any = _index(events, "on")
        self._decide_index, self._decide_any = _index(decisions, "placement")
        self._timer_rules: Mapping[str, CompiledRule] = MappingProxyType(
            {r.id: r for r in compiled if isinstance(r.rule.trigger, TimerTrigger)}
        )
        self._timers = TimerPlanner(r.rule for r in self._timer_rules.values())
        self.timer_rule_ids: tuple[str, ...] = self._timers.rule_ids

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str | bytes, version: str) -> RuleSet:
        """Validate and compile JSON data; raises ``RuleSetValidationError`` on any problem."""
        return cls(parse_rule_set(data), version)

    def __repr__(self) -> str:
        return f"RuleSet(version={self.version!r}, rules={len(self._rules)})"

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(self._rules)

    def rule(self, rule_id: str) -> CompiledRule:
        return self._rules[rule_id]

    def rules_for_event(self, event_type: str) -> tuple[CompiledRule, ...]:
        """The event rules an event of this type evaluates, in run order."""
        return self._event_index.get(event_type, self._event_any).rules

    def rules_for_placement(self, placement: str) -> tuple[CompiledRule, ...]:
        return self._decide_index.get(placement, self._decide_any).rules

    def pinned_items(self, placement: str) -> tuple[str, ...]:
        """Every item any rule of this placement may pin, for the pipeline to fetch up front."""
        ids: dict[str, None] = {}
        for r in self.rules_for_placement(placement):
            for a in r.actions:
                if isinstance(a.action, Pin):
                    ids.update(dict.fromkeys(a.action.pin))
        return tuple(ids)

    # -- events --------------------------------------------------------------------------

    def on_event(
        self,
        profile: Mapping[str, Any],
        event: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        *,
        at_ms: int | None = None,
    ) -> RuleOutcome:
        """Evaluate the event rules of ``event``'s type; never raises.

        ``context`` defaults to the event's own ``context``; ``now`` is the event's timestamp
        (``at_ms`` when the caller has it as epoch milliseconds already).
        """
        bucket = self._event_index.get(str(event.get("type")), self._event_any)
        if at_ms is None:
            at_ms = _event_ms(event)
        ctx = context if context is not None else event.get("context") or {}
        return self.run_event_bucket(bucket, profile, event, ctx, at_ms)

    def event_bucket(self, event_type: str) -> Bucket:
        """The rules an event of this type evaluates (see `run_event_bucket`)."""
        return self._event_index.get(event_type, self._event_any)

    def run_event_bucket(
        self,
        bucket: Bucket,
        profile: Mapping[str, Any],
        event: Mapping[str, Any],
        context: Mapping[str, Any],
        at_ms: int | None,
    ) -> RuleOutcome:
        """`on_event` once the caller has the event's rules, context and time (the apply
        path has them at hand: looking them up again costs as much as a condition)."""
        if not bucket.rules:
            return RuleOutcome(self.version, at_ms, (), (), ())
        values: dict[str, Any] = {"profile": profile, "event": event, "context": context}
        if bucket.uses_now:
            values[NOW_MS] = at_ms
            # recency conditions compute in milliseconds, from a profile view
            if bucket.now_value or at_ms is None or type(profile) is not ProfileView:
                values["now"] = None if at_ms is None else from_epoch_ms(at_ms)
        if bucket.evaluate is not None:
            results = bucket.evaluate(values)
            p = bucket.patterns.get(tuple(results)) if results else None
            if p is not None:  # a recurring outcome (see `_run_bucket`): the common case
                return RuleOutcome(
                    self.version, at_ms, p.evaluated, p.fired, p.errors, p.add_segments,
                    p.remove_segments, p.attributes, (), p,
                )  # fmt: skip
            return self._run_bucket(bucket, results, values, at_ms, event, profile)
        return self._run_state_rules(
            bucket.rules,
            Scope(values, bucket.projection),
            at_ms,
            user_id=_user_id(event, profile) if bucket.emits else None,
            cause=_cause(event) if bucket.emits else "",
            evaluated=bucket.ids,
        )

    def _run_bucket(
        self,
        bucket: Bucket,
        results: list[Any],
        values: dict[str, Any],
        at_ms: int | None,
        event: Mapping[str, Any],
        profile: Mapping[str, Any],
    ) -> RuleOutcome:
        """An event's rules from what their bucket's generated conditions gave (`results`).

        Outcomes recur: which keys a profile lacks yet and which rules hold repeat from
        event to event. Once an outcome was computed (the short loop below: the scope
        actions need, the user id and the cause are made only once a rule fires), events
        whose conditions give the same values reuse it: one lookup, no loop. Outcomes
        that depend on the event (outbox messages, computed attributes, new errors) are
        computed every time."""
        if not results:
            return RuleOutcome(self.version, at_ms, bucket.ids, (), ())
        errors: list[RuleError] = []
        effects: _Effects | None = None
        rules = bucket.rules
        recurring = True  # no new error, no action that depends on the event
        for index, value in results:
            r = rules[index]
            if value is not True:  # an error: mostly one seen before (see `_fast_error`)
                known = r.errors.get(value) if type(value) is Err else None
                if known is None:
                    recurring = False
                    known = _fast_error(r, value)
                errors.append(known)
                continue
            if effects is None:  # the first rule to fire
                effects, scope = _Effects(), Scope(values, bucket.projection)
                user_id = _user_id(event, profile) if bucket.emits else None
                cause = _cause(event) if bucket.emits else ""
            recurring = recurring and r.static
            self._fire(r, scope, at_ms, user_id, cause, effects, errors)
        outcome = (
            RuleOutcome(self.version, at_ms, bucket.ids, (), tuple(errors))
            if effects is None
            else self._outcome(at_ms, bucket.ids, effects, errors)
        )
        if recurring and len(bucket.patterns) < _PATTERNS:
            outcome.pattern = bucket.patterns[tuple(results)] = OutcomePattern(
                outcome.evaluated, outcome.fired, outcome.errors, outcome.add_segments,
                outcome.remove_segments, outcome.attributes,
            )  # fmt: skip
        return outcome

    def on_timer(
        self,
        timer: Timer,
        profile: Mapping[str, Any],
        now_ms: int,
        *,
        armed_by: Mapping[str, Any] | None = None,
    ) -> RuleOutcome:
        """Run a due timer's rule: its ``when`` sees the profile *now*; never raises.

        ``event`` is a synthetic ``timer`` event carrying the arming event (``event.armed_by``)
        when the core kept it. The outbox message id derives from the timer's token, so one
        arming emits at most one message even if it is fired twice.
        """
        rule = self._timer_rules.get(timer.rule_id)
        if rule is None:  # rule removed or disabled since arming: nothing to do
            return RuleOutcome(self.version, now_ms, (), (), ())
        now = from_epoch_ms(now_ms)
        event = {
            "event_id": f"timer:{timer.rule_id}:{timer.token}",
            "type": "timer",
            "user_id": timer.user_id,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "rule_id": timer.rule_id,
            "due_at": from_epoch_ms(timer.due_at_ms).isoformat().replace("+00:00", "Z"),
            "armed_by_event_id": timer.armed_by_event_id,
            "armed_by": dict(armed_by or {}),
        }
        values = {"profile": profile, "event": event, "context": {}, "now": now}
        return self._run_state_rules(
            (rule,),
            Scope(values, _projection((rule,))),
            now_ms,
            user_id=timer.user_id,
            cause=f"timer:{timer.token}",
        )

    def plan_timers(
        self, event: Mapping[str, Any], armed: Collection[str] | None = None
    ) -> tuple[TimerOp, ...]:
        """Timer operations ``event`` causes (see ``relevo.rules.timers``)."""
        return self._timers.plan(event, armed)

    def _run_state_rules(
        self,
        rules: Sequence[CompiledRule],
        activation: Scope,
        at_ms: int | None,
        *,
        user_id: str | None,
        cause: str,
        evaluated: tuple[str, ...] | None = None,
    ) -> RuleOutcome:
        if evaluated is None:
            evaluated = tuple([r.id for r in rules])
        errors_: list[RuleError] = []
        effects: _Effects | None = None
        for r in rules:
            if not _condition(r, activation, errors_):
                continue
            effects = effects or _Effects()
            self._fire(r, activation, at_ms, user_id, cause, effects, errors_)
        if effects is None:
            return RuleOutcome(self.version, at_ms, evaluated, (), tuple(errors_))
        return self._outcome(at_ms, evaluated, effects, errors_)

    def _outcome(
        self,
        at_ms: int | None,
        evaluated: tuple[str, ...],
        effects: _Effects,
        errors_: list[RuleError],
    ) -> RuleOutcome:
        segments = effects.segments
        return RuleOutcome(
            version=self.version,
            at_ms=at_ms,
            evaluated=evaluated,
            fired=tuple(effects.fired),
            errors=tuple(errors_),
            add_segments=tuple(s for s, add in segments.items() if add),
            remove_segments=tuple(s for s, add in segments.items() if not add),
            attributes=MappingProxyType(effects.attributes),
            outbox=tuple(effects.outbox),
        )

    @staticmethod
    def _fire(
        r: CompiledRule,
        activation: Scope,
        at_ms: int | None,
        user_id: str | None,
        cause: str,
        effects: _Effects,
        errors: list[RuleError],
    ) -> None:
        """Run the actions of a rule whose condition held."""
        done: list[BaseModel] = []
        for ca in r.actions:
            a = ca.action
            if isinstance(a, AddSegment):
                effects.segments.pop(a.add_segment, None)
                effects.segments[a.add_segment] = True
            elif isinstance(a, RemoveSegment):
                effects.segments.pop(a.remove_segment, None)
                effects.segments[a.remove_segment] = False
            elif isinstance(a, SetAttribute):
                if ca.expr is None:
                    value = a.set_attribute.value
                else:
                    try:
                        value = _json(ca.expr.evaluate(activation))
                    except ExpressionEvaluationError as exc:
                        errors.append(_rule_error(r.id, exc))
                        continue
                effects.attributes[a.set_attribute.name] = value
            elif isinstance(a, Emit):
                effects.outbox.append(
                    OutboxMessage(
                        message_id=f"{r.id}:{cause}:{ca.index}",
                        name=a.emit,
                        rule_id=r.id,
                        user_id=user_id,
                        payload=MappingProxyType(dict(a.payload)),
                        at_ms=at_ms,
                        cause=cause,
                    )
                )
            done.append(a)
        effects.fired.append(FiredRule(r.id, tuple(done)))

    # -- decisions -----------------------------------------------------------------------

    def for_decision(
        self,
        placement: str,
        profile: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        items: Iterable[Mapping[str, Any]] = (),
        *,
        now_ms: int | None = None,
    ) -> ItemAdjustments:
        """Evaluate the placement's decision rules over the candidate items; never raises.

        ``now_ms`` is the decision's time (the injected clock); CEL sees it as ``now``.
        """
        bucket = self._decide_index.get(placement, self._decide_any)
        if not bucket.rules:
            return ItemAdjustments(placement, self.version, now_ms)
        evaluated = bucket.ids
        values = {
            "profile": profile,
            "context": context or {},
            "now": None if now_ms is None else from_epoch_ms(now_ms),
            "placement": placement,
        }
        activation = Scope(values, bucket.projection)

        errors: list[RuleError] = []
        applied: list[str] = []
        per_item: list[tuple[CompiledRule, _CompiledAction]] = []
        pins: list[PinnedItem] = []
        variant: str | None = None
        variant_rule: str | None = None
        for r in bucket.rules:
            if not _condition(r, activation, errors):
                continue
            applied.append(r.id)
            for ca in r.actions:
                a = ca.action
                if isinstance(a, Variant):
                    if variant is None:  # rules run by priority: the first one wins
                        variant, variant_rule = a.variant, r.id
                elif isinstance(a, Pin):
                    pins += [PinnedItem(i, a.position + k, r.id) for k, i in enumerate(a.pin)]
                else:
                    per_item.append((r, ca))

        removed: dict[str, str] = {}
        multipliers: dict[str, float] = {}
        buried: set[str] = set()
        touched: dict[str, list[str]] = {}
        item_errors: dict[tuple[str, str, str], list[Any]] = {}
        for pin in pins:
            touched.setdefault(pin.item_id, []).append(pin.rule_id)
        if per_item:
            loop = None if activation.converted else _item_loop(bucket, per_item)
            if loop is None:
                _each_item(per_item, activation, items, removed, multipliers, buried, touched,
                           item_errors)  # fmt: skip
            else:

                def failed(index: int, value: Any) -> None:
                    r, ca = per_item[index]
                    assert ca.expr is not None  # filter/boost/bury always carry a condition
                    _count(item_errors, r.id, ca.expr.failure(value))

                loop(activation.values, items, removed, multipliers, buried, touched, failed)
        for (rule_id, field, kind), (message, count) in item_errors.items():
            errors.append(RuleError(rule_id, field, kind, message, count))
        return ItemAdjustments(
            placement=placement,
            version=self.version,
            at_ms=now_ms,
            evaluated=evaluated,
            applied=tuple(applied),
            errors=tuple(errors),
            removed=MappingProxyType(removed),
            multipliers=MappingProxyType(multipliers),
            buried=frozenset(buried),
            pins=tuple(pins),
            variant=variant,
            variant_rule=variant_rule,
            item_rules=MappingProxyType({k: tuple(dict.fromkeys(v)) for k, v in touched.items()}),
        )

    # -- explanations ----------------------------------------------------------------------

    def explain(
        self,
        profile: Mapping[str, Any],
        event: Mapping[str, Any] | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        placement: str | None = None,
        now_ms: int | None = None,
    ) -> tuple[RuleExplanation, ...]:
        """Which rules an event (or a decision for ``placement``) considers and why each one
        matched or not, with the values its condition saw. Slow path for humans; never raises.
        """
        out: list[RuleExplanation] = []
        if event is not None:
            at_ms = _event_ms(event)
            ctx = context if context is not None else event.get("context") or {}
            values: dict[str, Any] = {
                "profile": profile,
                "event": event,
                "context": ctx,
                "now": None if at_ms is None else from_epoch_ms(at_ms),
            }
            rules = self.rules_for_event(str(event.get("type")))
            out += self._explain_rules(rules, values, "event")
            for op in self.plan_timers(event):
                out.append(
                    RuleExplanation(
                        op.rule_id, "timer", None, f"{type(op).__name__.lower()}: {op!r}"
                    )
                )
        if placement is not None:
            values = {
                "profile": profile,
                "context": context or {},
                "now": None if now_ms is None else from_epoch_ms(now_ms),
                "placement": placement,
            }
            out += self._explain_rules(self.rules_for_placement(placement), values, "decide")
        return tuple(out)

    def _explain_rules(
        self,
        rules: Sequence[CompiledRule],
        values: Mapping[str, Any],
        kind: Literal["event", "decide"],
    ) -> list[RuleExplanation]:
        try:
            activation = Activation(values)
        except ActivationError as exc:
            return [RuleExplanation(r.id, kind, None, f"activation error: {exc}") for r in rules]
        out = []
        for r in rules:
            actions = tuple(action_kind(a.action) for a in r.actions)
            if r.when is None:
                out.append(RuleExplanation(r.id, kind, True, "no condition", None, actions))
                continue
            exp = r.when.explain(activation)
            if exp.error is not None:
                matched, reason = None, f"error: {exp.error}"
            elif exp.result is True:
                matched, reason = True, "condition is true"
            elif exp.result is False:
                matched, reason = False, "condition is false"
            else:
                matched, reason = None, f"error: condition evaluated to {exp.result!r}"
            out.append(RuleExplanation(r.id, kind, matched, reason, exp, actions))
        return out


# ------------------------------------------------------------------------------ helpers


_ITEM_LOOPS = 64
"""Generated item loops kept per bucket (one per set of rules that held together)."""


def _item_loop(
    bucket: Bucket, per_item: list[tuple[CompiledRule, _CompiledAction]]
) -> item_loop.ItemLoop | None:
    """The generated loop for these item actions (see `relevo.rules.item_loop`), or None
    when one is off the fast path (or too many combinations were seen): the general way."""
    key = tuple([(r.order, ca.index) for r, ca in per_item])
    loops = bucket.item_loops
    if key in loops:
        return loops[key]
    if len(loops) >= _ITEM_LOOPS:
        return None
    actions: list[item_loop.ItemAction] = []
    for r, ca in per_item:
        a, expr = ca.action, ca.expr
        if expr is None or expr.fast is None or not isinstance(a, Filter | Boost | Bury):
            loops[key] = None
            return None
        by = a.by if isinstance(a, Boost) else 1.0
        drop = isinstance(a, Filter) and a.on_error == "drop"
        actions.append(item_loop.ItemAction(r.id, action_kind(a), expr.fast, by, drop))
    found = loops[key] = item_loop.generate(actions)
    return found


def _each_item(
    per_item: list[tuple[CompiledRule, _CompiledAction]],
    activation: Scope,
    items: Iterable[Mapping[str, Any]],
    removed: dict[str, str],
    multipliers: dict[str, float],
    buried: set[str],
    touched: dict[str, list[str]],
    item_errors: dict[tuple[str, str, str], list[Any]],
) -> None:
    """The item actions over the items, one evaluation at a time (the general way)."""
    for item in items:
        item_id = item.get("item_id")
        if item_id is None:
            continue
        item_id = str(item_id)
        try:
            activation.bind("item", item)
        except ActivationError as exc:
            key = ("*", "item", "activation")
            item_errors.setdefault(key, [str(exc), 0])[1] += 1
            continue
        for r, ca in per_item:
            a, expr = ca.action, ca.expr
            assert expr is not None  # filter/boost/bury always carry a condition
            try:
                hit = expr.evaluate_bool(activation)
            except ExpressionEvaluationError as exc:
                _count(item_errors, r.id, exc)
                if isinstance(a, Filter) and a.on_error == "drop":
                    removed[item_id] = r.id
                    break  # a removed item needs no further actions
                continue
            if isinstance(a, Filter):
                if not hit:
                    removed[item_id] = r.id
                    touched.setdefault(item_id, []).append(r.id)
                    break
                continue
            if not hit:
                continue
            if isinstance(a, Boost):
                multipliers[item_id] = multipliers.get(item_id, 1.0) * a.by
            elif isinstance(a, Bury):
                buried.add(item_id)
            touched.setdefault(item_id, []).append(r.id)


def _count(
    item_errors: dict[tuple[str, str, str], list[Any]],
    rule_id: str,
    exc: ExpressionEvaluationError,
) -> None:
    """One more item on which `rule_id`'s action failed so (the first message is kept)."""
    item_errors.setdefault((rule_id, exc.field, exc.kind), [exc.message, 0])[1] += 1


def _condition(rule: CompiledRule, activation: Scope, errors: list[RuleError]) -> bool:
    when = rule.when
    if when is None:
        return True
    if when.fast is not None:  # the hot path: no exceptions, no conversion
        value = when.fast(activation.values)
        if value is True or value is False:
            return value
        errors.append(_fast_error(rule, value))
        return False
    try:
        return when.evaluate_bool(activation)
    except ExpressionEvaluationError as exc:
        errors.append(_rule_error(rule.id, exc))
        return False


_KNOWN_ERRORS = 64
"""Distinct run-time errors kept per rule: the same few recur on every event (a key the
profile doesn't have yet), and building their record each time would cost more than
evaluating the condition."""


def _fast_error(rule: CompiledRule, value: Any) -> RuleError:
    """The record of a fast-path condition that gave `value`, an `Err` or not a bool."""
    errors = rule.errors
    if type(value) is Err:
        known = errors.get(value)  # the very same Err (a key built once at compile time)
        if known is not None:
            return known
        key: Any = (value.kind, value.message)
    else:
        key = ("not_boolean", f"condition evaluated to {value!r}")
    known = errors.get(key)
    if known is None:
        field = rule.when.field if rule.when is not None else "when"
        known = RuleError(rule.rule.id, field, key[0], key[1])
        if len(errors) < _KNOWN_ERRORS:
            errors[key] = known
    if type(value) is Err and len(errors) < _KNOWN_ERRORS:
        errors[value] = known
    return known


def _rule_error(rule_id: str, exc: ExpressionEvaluationError) -> RuleError:
    return RuleError(rule_id, exc.field, exc.kind, exc.message)


def _event_ms(event: Mapping[str, Any]) -> int | None:
    try:
        return to_epoch_ms(event.get("timestamp"))
    except (TypeError, ValueError):
        return None


def _user_id(event: Mapping[str, Any], profile: Mapping[str, Any]) -> str | None:
    uid = event.get("user_id") or profile.get("user_id")
    return None if uid is None else str(uid)


def _cause(event: Mapping[str, Any]) -> str:
    return f"event:{event.get('event_id')}"


def _json(value: Any) -> JsonValue:
    """A CEL result stored as a profile attribute: JSON data (timestamps as ISO strings)."""
    result: JsonValue = jsonable(value)
    return result
