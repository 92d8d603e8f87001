"""Thompson sampling over arms with a binary KPI, with a floor on exploration.

Why a bandit: when the goal is to earn during the test rather than to measure
an effect precisely, shifting traffic to the arm that looks best loses less
than a fixed split. Thompson sampling does so in proportion to the posterior
probability that each arm is best.

Why a floor: a pure Thompson sampler starves arms it believes are worse, so it
cannot notice when they get better (seasonality, a fixed bug, a new catalog),
and the data on them stops being useful for reporting. Each decision is
therefore, with probability ``epsilon = K * min_share``, an arm drawn uniformly,
and otherwise Thompson sampling. The probability of choosing arm ``i`` is
exactly::

    P(i) = min_share + (1 - K * min_share) * P(arm i has the largest draw)

so every arm keeps at least ``min_share`` of traffic, by construction.

The model: each arm's success rate (click, conversion: whichever KPI the
placement optimizes) has a Beta(``prior_alpha + successes``, ``prior_beta +
failures``) posterior. The state is these counts, plain data the core can keep
as counters; the functions are pure. Note that bandit traffic is adaptive, so
the fixed-split tests of :mod:`relevo.experiments.stats` do not apply to its
arms as they do to an A/B test.

>>> state = new_state(["a", "b", "c"], min_share=0.05)
>>> rng = np.random.default_rng(0)
>>> for _ in range(200):
...     arm = choose(state, rng)
...     state = update(state, arm, reward=rng.random() < {"a": 0.1, "b": 0.2, "c": 0.6}[arm])
>>> shares = allocation(state)
>>> max(shares, key=lambda a: shares[a]), min(shares.values()) >= 0.05
('c', True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BanditState", "BetaArm", "allocation", "choose", "new_state", "update"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class BetaArm(BaseModel):
    """Observed successes and failures of one arm."""

    model_config = _FROZEN

    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)


class BanditState(BaseModel):
    """Everything a Thompson sampler needs; arms keep their order."""

    model_config = _FROZEN

    arms: dict[str, BetaArm] = Field(min_length=1)
    min_share: float = Field(default=0.05, ge=0.0, le=1.0)
    prior_alpha: float = Field(default=1.0, gt=0.0)
    prior_beta: float = Field(default=1.0, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> BanditState:
        if self.min_share * len(self.arms) > 1.0:
            raise ValueError(
                f"min_share {self.min_share} times {len(self.arms)} arms exceeds all traffic"
            )
        return self


def _posterior(state: BanditState) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Arm names and their Beta posterior parameters, in arm order."""
    names = list(state.arms)
    a = np.array([state.prior_alpha + c.successes for c in state.arms.values()])
    b = np.array([state.prior_beta + c.failures for c in state.arms.values()])
    return names, a, b


def new_state(
    arms: Sequence[str], min_share: float = 0.05, prior_alpha: float = 1.0, prior_beta: float = 1.0
) -> BanditState:
    """A fresh state: no observations, uniform Beta(1, 1) priors by default."""
    if len(set(arms)) != len(arms):
        raise ValueError("arm names must be unique")
    return BanditState(
        arms={name: BetaArm() for name in arms},
        min_share=min_share,
        prior_alpha=prior_alpha,
        prior_beta=prior_beta,
    )


def choose(state: BanditState, rng: np.random.Generator) -> str:
    """Choose an arm for one decision (see the module docstring for the rule)."""
    names, a, b = _posterior(state)
    if rng.random() < state.min_share * len(names):
        return names[int(rng.integers(len(names)))]
    return names[int(np.argmax(rng.beta(a, b)))]


def update(state: BanditState, arm: str, reward: bool) -> BanditState:
    """Return the state after observing ``reward`` (success or not) on ``arm``."""
    counts = state.arms.get(arm)
    if counts is None:
        raise KeyError(f"unknown arm {arm!r}")
    if reward:
        new = BetaArm(successes=counts.successes + 1, failures=counts.failures)
    else:
        new = BetaArm(successes=counts.successes, failures=counts.failures + 1)
    return state.model_copy(update={"arms": {**state.arms, arm: new}})


def allocation(state: BanditState, draws: int = 20_000, seed: int = 0) -> dict[str, float]:
    """Each arm's current probability of being chosen, for reporting.

    Monte Carlo over ``draws`` posterior samples with a fixed ``seed``, so the
    same state always reports the same numbers. The values sum to 1 and each
    is at least ``state.min_share``.
    """
    names, a, b = _posterior(state)
    rng = np.random.default_rng(seed)
    samples = rng.beta(a, b, size=(draws, len(names)))
    best = np.bincount(np.argmax(samples, axis=1), minlength=len(names)) / draws
    explore = state.min_share * len(names)
    return {
        name: float(state.min_share + (1.0 - explore) * p)
        for name, p in zip(names, best, strict=True)
    }
