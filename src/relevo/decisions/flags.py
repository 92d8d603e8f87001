"""Feature flags: values per user, with targeting rules (CEL) and percentage rollouts.

    {"flags": [
      {"key": "new_checkout", "type": "bool", "default": false,
       "rules": [{"when": "context.country == 'FR'", "value": true}],
       "rollout": {"percentage": 10, "value": true}},
      {"key": "banner_color", "type": "string", "default": "blue"}]}

For a user, the first targeting rule whose condition holds gives the value; else,
a user inside the rollout percentage (deterministic hashing on the flag key, as
experiments assign) gets the rollout value; else the default. A disabled flag is
its default. Conditions see `profile`, `context` and `now`, like decision rules,
and share their CEL engine (and fast path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relevo.events import invalid_from
from relevo.experiments.assignment import BUCKETS, bucket
from relevo.rules.expressions import (
    Expression,
    ExpressionCompileError,
    ExpressionEvaluationError,
    Projection,
    Scope,
)

FLAG_ROOTS = frozenset({"profile", "context", "now"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Targeting(_Strict):
    when: str
    value: Any


class Rollout(_Strict):
    percentage: float = Field(ge=0, le=100)
    value: Any


class Flag(_Strict):
    key: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
    type: Literal["bool", "string", "json"] = "bool"
    default: Any = False
    enabled: bool = True
    rules: list[Targeting] = Field(default_factory=list)
    rollout: Rollout | None = None

    @model_validator(mode="after")
    def _typed(self) -> Flag:
        values = [self.default, *(r.value for r in self.rules)]
        if self.rollout is not None:
            values.append(self.rollout.value)
        for value in values:
            if self.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"flag {self.key!r} is a bool flag; {value!r} is not a bool")
            if self.type == "string" and not isinstance(value, str):
                raise ValueError(f"flag {self.key!r} is a string flag; {value!r} is not a string")
        for index, rule in enumerate(self.rules):
            try:
                Expression.compile(
                    rule.when, rule_id=self.key, field=f"rules[{index}].when", roots=FLAG_ROOTS
                )
            except ExpressionCompileError as error:
                raise ValueError(str(error)) from None
        return self


class FlagSet(_Strict):
    flags: list[Flag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> FlagSet:
        keys = [f.key for f in self.flags]
        if len(set(keys)) != len(keys):
            raise ValueError(f"flag keys must be unique, got {keys}")
        return self


class Flags:
    """The active flags, compiled (what `Versioned` compiles a spec into)."""

    def __init__(self, spec: dict[str, Any], version: str) -> None:
        self.version = version
        self.flags = FlagSet.model_validate(spec).flags
        self._conditions = {
            flag.key: [
                Expression.compile(
                    r.when, rule_id=flag.key, field=f"rules[{i}].when", roots=FLAG_ROOTS
                )
                for i, r in enumerate(flag.rules)
            ]
            for flag in self.flags
        }
        self._projection = Projection.of(
            e for conditions in self._conditions.values() for e in conditions if e.fast is None
        )

    def evaluate(self, user_id: str, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Every flag's value for one user, and why: `rule:<n>`, `rollout`, `default`."""
        scope = Scope(values, self._projection)
        found: dict[str, dict[str, Any]] = {}
        for flag in self.flags:
            found[flag.key] = _evaluate(flag, self._conditions[flag.key], user_id, scope)
        return found


def _evaluate(
    flag: Flag, conditions: list[Expression], user_id: str, scope: Scope
) -> dict[str, Any]:
    if not flag.enabled:
        return {"value": flag.default, "reason": "disabled"}
    for index, (rule, condition) in enumerate(zip(flag.rules, conditions, strict=True)):
        try:
            if condition.evaluate_bool(scope):
                return {"value": rule.value, "reason": f"rule:{index}"}
        except ExpressionEvaluationError:  # a targeting rule that fails is skipped, like a rule
            continue
    if flag.rollout is not None:
        threshold = round(flag.rollout.percentage / 100 * BUCKETS)
        if bucket(f"flag:{flag.key}", "", user_id) < threshold:
            return {"value": flag.rollout.value, "reason": "rollout"}
    return {"value": flag.default, "reason": "default"}


def canonical_flags(raw: Any) -> dict[str, Any]:
    try:
        spec = FlagSet.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error, code="invalid_flags") from None
    dumped: dict[str, Any] = spec.model_dump(mode="json", exclude_unset=True)
    dumped.setdefault("flags", [])
    return dumped
