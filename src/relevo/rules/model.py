"""Rules as data: pydantic v2 models of rule sets, triggers and actions.

Why plain, strict models: rule sets arrive as JSON (``PUT /v1/rules``, ``relevo.yaml``) from
people, so every typo must be caught at load time with a message that names the rule and the
field -- an unknown key is an error (``extra="forbid"``), not a silently ignored setting. CEL
conditions are compiled during validation too, so one call reports every problem of a rule set.

A rule::

    {"id": "electronics-burst",
     "trigger": {"on": "view"},
     "when": "profile.category_counts.view['electronics']['5m'] > 3",
     "then": [{"add_segment": "electronics-burst"}]}

Three trigger kinds, told apart by their keys:

* event: ``{"on": "view"}`` (``"*"`` = any event). ``when`` sees ``profile``, ``event``,
  ``context`` (the event's context) and ``now`` (the event's timestamp).
* timer: ``{"after": "add_to_cart", "inactive_for": "15m", "unless": ["purchase"]}`` -- fires
  once the user has been inactive for ``inactive_for`` after an ``after`` event, unless an
  ``unless`` event came first. Further activity pushes the deadline back: by default *any*
  event of the user other than the ``unless`` ones; ``reset_on`` narrows that to a list of
  types (``[]``: never reset). ``when`` is evaluated when the timer fires, against the profile
  as it is then (so ``size(profile.cart) > 0`` means "the cart is still full").
* decision: ``{"on": "decide", "placement": "home_hero"}`` (``"*"`` = every placement). ``when``
  sees ``profile``, ``context``, ``now`` and ``placement``; item actions also see ``item``.

Actions, each one JSON object with exactly one action key:

* state actions (event and timer rules): ``{"add_segment": "vip"}``,
  ``{"remove_segment": "vip"}``, ``{"set_attribute": {"name": "tier", "value": "gold"}}`` or
  ``{"set_attribute": {"name": "last_category", "expr": "event.category"}}``,
  ``{"emit": "cart_abandoned", "payload": {"channel": "email"}}``;
* decision actions (decision rules): ``{"filter": "item.in_stock"}`` keeps matching items
  (``"on_error": "drop"`` drops items the condition cannot be evaluated on; default ``keep``),
  ``{"boost": "item.category == 'electronics'", "by": 2.0}`` multiplies matching items'
  scores, ``{"bury": "item.price > 500.0"}`` moves matching items after all others,
  ``{"pin": ["sku1", "sku2"], "position": 0}`` places items at fixed slots,
  ``{"variant": "B"}`` chooses the placement's content variant.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from relevo.rules.expressions import (
    Expression,
    ExpressionCompileError,
    RulesError,
)

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
EventType = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$")]
EventTypeOrAny = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63})$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
AttributeName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]

#: Variables bound for each kind of expression (see the module docstring).
EVENT_ROOTS: Final = frozenset({"profile", "event", "context", "now"})
DECISION_ROOTS: Final = frozenset({"profile", "context", "now", "placement"})
ITEM_ROOTS: Final = DECISION_ROOTS | {"item"}

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """``"15m"`` -> 900000. Units ms, s, m, h, d; compounds like ``"1h30m"`` are allowed.

    >>> parse_duration_ms("1h30m")
    5400000
    """
    if not isinstance(text, str) or not text or _DURATION.sub("", text) != "":
        raise ValueError(f"invalid duration {text!r}; use a number and a unit: 30s, 15m, 2h, 1d")
    total = sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION.findall(text))
    if total <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return total


def _check_cel(source: str, roots: frozenset[str]) -> str:
    """Compile during validation, turning a compile error into a positioned pydantic error."""
    try:
        Expression.compile(source, roots=roots)
    except ExpressionCompileError as exc:
        pos = exc.position
        ctx: dict[str, Any] = {"message": exc.message, "where": f" at {pos}" if pos else ""}
        if pos is not None:
            ctx.update(line=pos.line, column=pos.column, offset=pos.offset)
        raise PydanticCustomError("cel_compile", "{message}{where}", ctx) from exc
    return source


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------ triggers


class EventTrigger(_Strict):
    """Evaluate the rule on each event of type ``on`` (``"*"``: every event)."""

    on: EventTypeOrAny

    @field_validator("on")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v == "decide":
            raise ValueError("'decide' is reserved for decision triggers; add a placement")
        return v


class TimerTrigger(_Strict):
    """After an ``after`` event, fire once the user has been inactive for ``inactive_for``."""

    after: EventTypeOrAny
    inactive_for: str
    unless: tuple[EventType, ...] = ()
    #: Event types that push the deadline back; ``None``: every type except ``unless``.
    reset_on: tuple[EventType, ...] | None = None

    @field_validator("inactive_for")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration_ms(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TimerTrigger:
        if self.after in self.unless:
            raise ValueError(f"'after' event {self.after!r} cannot also be in 'unless'")
        return self

    @property
    def inactive_for_ms(self) -> int:
        return parse_duration_ms(self.inactive_for)

    def resets_on(self, event_type: str) -> bool:
        """Whether an event of this type pushes an armed timer's deadline back."""
        if event_type in self.unless:
            return False
        return self.reset_on is None or event_type in self.reset_on


class DecisionTrigger(_Strict):
    """Evaluate the rule when a decision is made for ``placement`` (``"*"``: any placement)."""

    on: Literal["decide"]
    placement: Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127})$")]


def _trigger_tag(v: Any) -> str | None:
    if isinstance(v, Mapping):
        if "after" in v:
            return "timer"
        if v.get("on") == "decide" and "placement" in v:
            return "decide"
        return "event" if "on" in v else None
    if isinstance(v, TimerTrigger):
        return "timer"
    if isinstance(v, DecisionTrigger):
        return "decide"
    return "event" if isinstance(v, EventTrigger) else None


Trigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[TimerTrigger, Tag("timer")]
    | Annotated[DecisionTrigger, Tag("decide")],
    Discriminator(
        _trigger_tag,
        custom_error_type="invalid_trigger",
        custom_error_message=(
            'a trigger is {"on": TYPE}, {"after": TYPE, "inactive_for": "15m"} '
            'or {"on": "decide", "placement": NAME}'
        ),
    ),
]

# ------------------------------------------------------------------------------- actions


class AddSegment(_Strict):
    add_segment: Name


class RemoveSegment(_Strict):
    remove_segment: Name


class AttributeAssignment(_Strict):
    """A literal ``value`` or a CEL ``expr`` computed from the event (exactly one of them)."""

    name: AttributeName
    value: JsonValue = None
    expr: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AttributeAssignment:
        has_value = "value" in self.model_fields_set
        if has_value == (self.expr is not None):
            raise ValueError("set_attribute needs exactly one of 'value' or 'expr'")
        return self

    @field_validator("expr")
    @classmethod
    def _compile(cls, v: str | None) -> str | None:
        return None if v is None else _check_cel(v, EVENT_ROOTS)


class SetAttribute(_Strict):
    set_attribute: AttributeAssignment


class Emit(_Strict):
    """Put a message in the outbox (the core stores it; webhooks and email read from there)."""

    emit: Name
    payload: dict[str, JsonValue] = Field(default_factory=dict)


class Filter(_Strict):
    """Keep only items for which the condition holds."""

    filter: str
    on_error: Literal["keep", "drop"] = "keep"

    @field_validator("filter")
    @classmethod
    def _compile(cls, v: str) -> str:
        return _check_cel(v, ITEM_ROOTS)


class Boost(_Strict):
    """Multiply matching items' scores by ``by`` (below 1 demotes softly)."""

    boost: str
    by: float = 2.0

    @field_validator("boost")
    @classmethod
    def _compile(cls, v: str) -> str:
        return _check_cel(v, ITEM_ROOTS)

    @field_validator("by")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError("'by' must be a positive finite number")
        return v


class Bury(_Strict):
    """Move matching items after every other item, keeping their relative order."""

    bury: str

    @field_validator("bury")
    @classmethod
    def _compile(cls, v: str) -> str:
        return _check_cel(v, ITEM_ROOTS)


class Pin(_Strict):
    """Place these items at slots ``position``, ``position + 1``... in this order."""

    pin: tuple[Name, ...] = Field(min_length=1)
    position: int = Field(default=0, ge=0)


class Variant(_Strict):
    """Choose the placement's content variant; the highest-priority firing rule wins."""

    variant: Name


STATE_ACTIONS: Final = (AddSegment, RemoveSegment, SetAttribute, Emit)
DECISION_ACTIONS: Final = (Filter, Boost, Bury, Pin, Variant)
_ACTION_KEYS: Final = {
    "add_segment": "add_segment",
    "remove_segment": "remove_segment",
    "set_attribute": "set_attribute",
    "emit": "emit",
    "filter": "filter",
    "boost": "boost",
    "bury": "bury",
    "pin": "pin",
    "variant": "variant",
}
_ACTION_TYPES: Final[dict[type[BaseModel], str]] = {
    AddSegment: "add_segment",
    RemoveSegment: "remove_segment",
    SetAttribute: "set_attribute",
    Emit: "emit",
    Filter: "filter",
    Boost: "boost",
    Bury: "bury",
    Pin: "pin",
    Variant: "variant",
}


def _action_tag(v: Any) -> str | None:
    if isinstance(v, Mapping):
        keys = [k for k in v if k in _ACTION_KEYS]
        return keys[0] if len(keys) == 1 else None
    return _ACTION_TYPES.get(type(v))


Action = Annotated[
    Annotated[AddSegment, Tag("add_segment")]
    | Annotated[RemoveSegment, Tag("remove_segment")]
    | Annotated[SetAttribute, Tag("set_attribute")]
    | Annotated[Emit, Tag("emit")]
    | Annotated[Filter, Tag("filter")]
    | Annotated[Boost, Tag("boost")]
    | Annotated[Bury, Tag("bury")]
    | Annotated[Pin, Tag("pin")]
    | Annotated[Variant, Tag("variant")],
    Discriminator(
        _action_tag,
        custom_error_type="invalid_action",
        custom_error_message="an action needs exactly one of: " + ", ".join(_ACTION_KEYS),
    ),
]


def action_kind(action: BaseModel) -> str:
    """The action's key, e.g. ``"boost"``."""
    return _ACTION_TYPES[type(action)]


# ---------------------------------------------------------------------------------- rules


class Rule(_Strict):
    """One rule: a trigger, an optional CEL condition, and the actions to take."""

    id: RuleId
    description: str = ""
    enabled: bool = True
    #: Higher runs first; ties keep the rule set's order. Decides which variant wins.
    priority: int = 0
    trigger: Trigger
    when: str | None = None
    then: tuple[Action, ...]

    @field_validator("when")
    @classmethod
    def _compile_when(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        trigger = info.data.get("trigger")
        roots = DECISION_ROOTS if isinstance(trigger, DecisionTrigger) else EVENT_ROOTS
        return _check_cel(v, roots)

    @model_validator(mode="after")
    def _actions_fit_trigger(self) -> Rule:
        # Checked here rather than with min_length, which pydantic would also report (as a
        # confusing "0 items") whenever one action fails to validate.
        if not self.then:
            raise PydanticCustomError(
                "no_actions", "a rule needs at least one action", {"field": "then"}
            )
        decision = isinstance(self.trigger, DecisionTrigger)
        allowed = DECISION_ACTIONS if decision else STATE_ACTIONS
        for i, action in enumerate(self.then):
            if not isinstance(action, allowed):
                kind = "decision" if decision else "event and timer"
                names = ", ".join(_ACTION_TYPES[a] for a in allowed)
                raise PydanticCustomError(
                    "action_not_allowed",
                    "{action} is not allowed in {kind} rules (allowed: {names})",
                    {"field": f"then[{i}]", "action": action_kind(action), "kind": kind}
                    | {"names": names},
                )
        return self

    @property
    def kind(self) -> Literal["event", "timer", "decide"]:
        if isinstance(self.trigger, TimerTrigger):
            return "timer"
        return "decide" if isinstance(self.trigger, DecisionTrigger) else "event"


class RuleSetSpec(_Strict):
    """The JSON document of a rule set: ``{"rules": [...]}``."""

    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSetSpec:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise PydanticCustomError(
                    "duplicate_rule_id", "duplicate rule id '{rule_id}'", {"rule_id": rule.id}
                )
            seen.add(rule.id)
        return self


# ---------------------------------------------------------------------------- validation


class RuleIssue(BaseModel):
    """One validation problem, located by rule id and field (e.g. ``then[1].by``)."""

    model_config = ConfigDict(frozen=True)

    rule_id: str | None
    field: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        who = f"rule {self.rule_id!r}" if self.rule_id else "rule set"
        return f"{who}: {self.field or '(rule)'}: {self.message}"


class RuleSetValidationError(RulesError, ValueError):
    """A rule set that does not validate; ``issues`` lists every problem found."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


_UNION_FIELDS: Final = {"trigger", "then"}


def _field_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's loc without union tags, as ``then[1].by``."""
    out = ""
    skip_tag = False
    for part in loc:
        if skip_tag and isinstance(part, str):
            skip_tag = False
            continue
        skip_tag = False
        if isinstance(part, int):
            out += f"[{part}]"
            skip_tag = out.startswith("then")
        else:
            out += f".{part}" if out else part
            skip_tag = part == "trigger"
    return out


def _issues(exc: ValidationError, raw: Any) -> list[RuleIssue]:
    raw_rules = raw.get("rules") if isinstance(raw, Mapping) else None
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        rule_id: str | None = None
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            if isinstance(raw_rules, list | tuple) and loc[1] < len(raw_rules):
                candidate = raw_rules[loc[1]]
                if isinstance(candidate, Mapping) and isinstance(candidate.get("id"), str):
                    rule_id = candidate["id"]
            field = _field_path(loc[2:])
            if rule_id is None:  # no usable id: locate the rule by its index instead
                field = f"rules[{loc[1]}]" + (f".{field}" if field else "")
        else:
            field = _field_path(loc)
        ctx = err.get("ctx") or {}
        if "field" in ctx:  # a rule-level check that knows which field it is about
            field = f"{field}.{ctx['field']}" if field else str(ctx["field"])
        if err["type"] == "duplicate_rule_id":
            rule_id, field = str(ctx.get("rule_id")), "id"
        message = err["msg"].removeprefix("Value error, ")
        issues.append(
            RuleIssue(
                rule_id=rule_id,
                field=field,
                message=message,
                line=ctx.get("line"),
                column=ctx.get("column"),
            )
        )
    return issues


def parse_rule_set(data: Mapping[str, Any] | str | bytes) -> RuleSetSpec:
    """Validate a rule set from JSON data or text; raise :class:`RuleSetValidationError`."""
    try:
        if isinstance(data, str | bytes):
            return RuleSetSpec.model_validate_json(data)
        return RuleSetSpec.model_validate(data)
    except ValidationError as exc:
        raw: Any = data
        if isinstance(data, str | bytes):
            import json

            try:
                raw = json.loads(data)
            except ValueError:
                raw = None
        raise RuleSetValidationError(_issues(exc, raw)) from None


def parse_rule(data: Mapping[str, Any]) -> Rule:
    """Validate a single rule; errors name its id like :func:`parse_rule_set`'s."""
    return parse_rule_set({"rules": [data]}).rules[0]


def canonical_rule_set(data: Any) -> dict[str, Any]:
    """A rule set as stored: validated, with only what the author wrote."""
    dumped: dict[str, Any] = parse_rule_set(data).model_dump(mode="json", exclude_unset=True)
    dumped.setdefault("rules", [])
    return dumped
