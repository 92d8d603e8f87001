"""Experiments as configuration, and what they say for one user.

An experiment runs on one placement and splits its users between arms; each arm
is a way of filling the placement (a policy: `default`, `rules`, `ml`, `auto`,
or one fixed `variant`). Allocation is `fixed` (deterministic hashing, sticky:
see `relevo.experiments.assignment`) or `thompson` (a bandit that shifts traffic
to the arm with the better KPI, keeping a minimum exploration share).

    {"experiments": [
      {"id": "hero-test", "placement": "home_hero", "control": "default",
       "arms": [{"name": "default", "policy": "default"},
                {"name": "rules", "policy": "rules"},
                {"name": "ml", "policy": "ml", "weight": 2}],
       "status": "running", "allocation": "fixed", "kpi": "click"}]}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relevo.decisions.placements import Name, Policy
from relevo.events import invalid_from
from relevo.experiments.assignment import Arm, ExperimentConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExperimentArm(_Strict):
    name: Name
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    policy: Policy = "default"
    variant: str | None = Field(None, description="Show this variant (a content A/B test).")


class Experiment(_Strict):
    id: Name
    placement: Name
    arms: list[ExperimentArm] = Field(min_length=2)
    control: str | None = Field(None, description="The arm others are compared with.")
    status: Literal["running", "stopped"] = "running"
    allocation: Literal["fixed", "thompson"] = "fixed"
    kpi: Literal["click", "conversion"] = "click"
    min_exploration: float = Field(0.05, ge=0, le=1)
    holdout_share: float = Field(0.0, ge=0, lt=1)
    salt: str = ""
    forced: dict[str, str] = Field(default_factory=dict, description="user id -> arm (QA)")

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not an arm")
        if self.min_exploration * len(self.arms) > 1:
            raise ValueError("min_exploration times the number of arms exceeds all traffic")
        ExperimentConfig.model_validate(self.assignment_config())  # weights, forced arms
        return self

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].name

    def arm(self, name: str) -> ExperimentArm | None:
        return next((arm for arm in self.arms if arm.name == name), None)

    def assignment_config(self) -> dict[str, Any]:
        return {
            "experiment_id": self.id,
            "salt": self.salt,
            "holdout_salt": self.salt + "/holdout",
            "arms": [{"name": arm.name, "weight": arm.weight} for arm in self.arms],
            "holdout_share": self.holdout_share,
            "forced": self.forced,
        }


class ExperimentSet(_Strict):
    experiments: list[Experiment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_running_per_placement(self) -> ExperimentSet:
        ids = [e.id for e in self.experiments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"experiment ids must be unique, got {ids}")
        running = [e.placement for e in self.experiments if e.status == "running"]
        doubled = sorted({p for p in running if running.count(p) > 1})
        if doubled:
            raise ValueError(f"only one running experiment per placement: {doubled}")
        return self


class Experiments:
    """The active experiments (what `Versioned` compiles a spec into)."""

    def __init__(self, spec: dict[str, Any], version: str) -> None:
        self.version = version
        experiments = ExperimentSet.model_validate(spec).experiments
        self.by_id = {e.id: e for e in experiments}
        self.assignment = {
            e.id: ExperimentConfig(
                **{
                    **e.assignment_config(),
                    "arms": tuple(Arm(**a) for a in e.assignment_config()["arms"]),
                }
            )
            for e in experiments
        }
        self.running = {e.placement: e for e in experiments if e.status == "running"}

    def on(self, placement: str) -> Experiment | None:
        """The experiment running on a placement, if any."""
        return self.running.get(placement)


def canonical_experiments(raw: Any) -> dict[str, Any]:
    try:
        spec = ExperimentSet.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error, code="invalid_experiments") from None
    dumped: dict[str, Any] = spec.model_dump(mode="json", exclude_unset=True)
    dumped.setdefault("experiments", [])
    return dumped
