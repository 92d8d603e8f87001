"""Deterministic assignment of units (users) to experiment arms.

Why hashing: a unit must land in the same arm on every request, in every API
process, after every restart and in every SDK, without a lookup. So the arm is
a pure function of ``(experiment_id, salt, unit_id, arms and weights, holdout,
forced overrides)``. Python's ``hash()`` is salted per process
(``PYTHONHASHSEED``) and is never used.

The algorithm (normative: the JS SDK and any other implementation must
reproduce it bit for bit)
----------------------------------------------------------------------------

1. **Bucket.** ``key = f"{experiment_id}:{salt}:{unit_id}"`` encoded as UTF-8.
   ``h`` = the first 8 bytes of ``SHA-256(key)`` read as an unsigned big-endian
   64-bit integer. ``bucket = h mod 10000``, an integer in ``[0, 10000)`` (one
   bucket is 0.01 % of traffic). The modulo bias is below ``10000 / 2**64``.
   In JS: ``BigInt("0x" + hex.slice(0, 16)) % 10000n``.

2. **Arms by cumulative weights.** Arms are an ordered list of
   ``(name, weight)``, weights finite and ``>= 0`` with a positive total. With
   the running sum ``c_i = c_{i-1} + w_i`` (left to right, IEEE-754 doubles,
   ``c_0 = 0``) and ``total = c_K``, arm ``i`` owns the buckets
   ``[b_{i-1}, b_i)`` where ``b_0 = 0``, ``b_K = 10000`` and, for ``i < K``,
   ``b_i = floor(c_i * 10000 / total + 0.5)`` evaluated exactly in that order
   (``Math.floor((c * 10000) / total + 0.5)`` in JS). A zero weight owns no
   bucket; a weight below 0.005 % of the total may own none either.

3. **Holdout.** A share of units is kept out of the experiment entirely (no
   arm, they get the default experience). It is decided by a *separate* bucket
   computed as in step 1 with ``holdout_salt`` in place of ``salt``:
   the unit is held out iff ``holdout_bucket < floor(holdout_share * 10000 +
   0.5)``. Because the two hashes use different salts they are independent, so
   the arms split the remaining units in their weights' ratio.

4. **Forced arms.** ``forced`` maps a unit id to an arm name (QA, demos,
   support). A forced unit gets that arm, whatever its buckets, holdout
   included. Forced units should be excluded from analysis by the caller.

Order of precedence: forced, then holdout, then the arm bucket.

Changing weights, salt or holdout
---------------------------------

Assignment is stateless; *stickiness* (keeping a unit in the arm it was first
shown) is the caller's job, with a store. What a change does without it:

- **Weights** move the boundaries ``b_i``; only the buckets between the old
  and the new boundary change arm. Going from 50/50 to 60/40 moves the units in
  buckets ``[5000, 6000)`` from the second arm to the first, nobody else.
  Ramping a treatment up (e.g. 10 % -> 50 %) by growing the *first* arm's weight
  never moves a unit out of it.
- **Salt** re-randomizes everyone: change it to restart an experiment with
  fresh, independent groups.
- **Holdout share** moves units in or out of the holdout; the arm bucket is not
  affected.

With a store, :func:`is_still_valid` says whether a stored :class:`Assignment`
may be kept under the current config, and :func:`assign_sticky` applies it. The
rules: a different experiment id or salt invalidates everything; a forced
override always wins; a removed override sends the unit back to hashing; a
unit in an arm keeps it while the arm exists with a positive weight (so a
weight change does not reshuffle users who have already been exposed, and a
grown holdout never swallows exposed users, since that would contaminate it; the
holdout then reaches its new share among new units only); a held-out unit stays
held out only while the current holdout still contains it. Note that after a
weight change with sticky assignment the arms mix cohorts that entered under
different ratios; analyse such experiments by entry period or restart them with
a new salt.

>>> config = ExperimentConfig(
...     experiment_id="hero-banner",
...     salt="2024-06",
...     arms=(Arm(name="control"), Arm(name="treatment")),
... )
>>> bucket("hero-banner", "2024-06", "user-42")
2886
>>> assign(config, "user-42").arm
'control'
>>> [(r.arm, r.start, r.end) for r in arm_ranges(config)]
[('control', 0, 5000), ('treatment', 5000, 10000)]
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BUCKETS",
    "Arm",
    "ArmRange",
    "Assignment",
    "ExperimentConfig",
    "arm_ranges",
    "assign",
    "assign_sticky",
    "bucket",
    "is_held_out",
    "is_still_valid",
]

BUCKETS = 10_000
"""Number of hash buckets; one bucket is 0.01 % of traffic."""


def bucket(experiment_id: str, salt: str, unit_id: str) -> int:
    """Return the unit's bucket in ``[0, BUCKETS)`` (step 1 of the algorithm).

    >>> bucket("exp", "s", "u1"), bucket("exp", "s", "u2"), bucket("exp", "t", "u1")
    (8114, 7992, 1356)
    """
    key = f"{experiment_id}:{salt}:{unit_id}".encode()
    h = int.from_bytes(hashlib.sha256(key).digest()[:8], "big", signed=False)
    return h % BUCKETS


class Arm(BaseModel):
    """One arm of an experiment and its relative traffic weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)


class ArmRange(BaseModel):
    """The half-open bucket range ``[start, end)`` that an arm owns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arm: str
    start: int
    end: int


class ExperimentConfig(BaseModel):
    """Everything assignment depends on; plain data, loadable from relevo.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment_id: str = Field(min_length=1)
    salt: str = ""
    arms: tuple[Arm, ...] = Field(min_length=1)
    holdout_share: float = Field(default=0.0, ge=0.0, lt=1.0)
    holdout_salt: str = "holdout"
    forced: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if sum(a.weight for a in self.arms) <= 0.0:
            raise ValueError("the total weight of the arms must be positive")
        unknown = sorted(set(self.forced.values()) - set(names))
        if unknown:
            raise ValueError(f"forced arms {unknown} are not arms of the experiment")
        if self.holdout_salt == self.salt:
            # The same salt would make holdout and arm buckets identical, so
            # the holdout would take its units from the first arm only.
            raise ValueError("holdout_salt must differ from salt")
        return self

    def arm(self, name: str) -> Arm | None:
        """Return the arm called ``name``, or None."""
        for a in self.arms:
            if a.name == name:
                return a
        return None


class Assignment(BaseModel):
    """The outcome for one unit; small enough to store as the sticky record.

    ``arm`` is None exactly when ``reason == "holdout"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment_id: str
    salt: str
    unit_id: str
    arm: str | None
    reason: Literal["hash", "holdout", "forced"]


@functools.lru_cache(maxsize=1024)
def _range_ends(arms: tuple[Arm, ...]) -> tuple[int, ...]:
    # Cached on the (frozen, hashable) arms: assignment runs on every decision.
    total = 0.0
    for a in arms:
        total += a.weight
    ends: list[int] = []
    running = 0.0
    for a in arms[:-1]:
        running += a.weight
        ends.append(math.floor(running * BUCKETS / total + 0.5))
    ends.append(BUCKETS)
    return tuple(ends)


def arm_ranges(config: ExperimentConfig) -> list[ArmRange]:
    """Return each arm's bucket range (step 2 of the algorithm)."""
    ends = _range_ends(config.arms)
    starts = (0, *ends[:-1])
    return [
        ArmRange(arm=a.name, start=s, end=e)
        for a, s, e in zip(config.arms, starts, ends, strict=True)
    ]


def is_held_out(config: ExperimentConfig, unit_id: str) -> bool:
    """Whether the holdout contains the unit (step 3; overrides not applied)."""
    threshold = math.floor(config.holdout_share * BUCKETS + 0.5)
    if threshold == 0:
        return False
    return bucket(config.experiment_id, config.holdout_salt, unit_id) < threshold


def _hashed_arm(config: ExperimentConfig, unit_id: str) -> str:
    b = bucket(config.experiment_id, config.salt, unit_id)
    # The first arm whose range ends after b; empty ranges (zero weight) are
    # skipped because their end equals their start.
    return config.arms[bisect.bisect_right(_range_ends(config.arms), b)].name


def assign(config: ExperimentConfig, unit_id: str) -> Assignment:
    """Assign a unit: forced override, else holdout, else its hashed arm.

    >>> config = ExperimentConfig(
    ...     experiment_id="e", salt="s", arms=(Arm(name="a"), Arm(name="b")),
    ...     forced={"qa-1": "b"},
    ... )
    >>> assign(config, "qa-1").reason
    'forced'
    """
    common = {"experiment_id": config.experiment_id, "salt": config.salt, "unit_id": unit_id}
    forced = config.forced.get(unit_id)
    if forced is not None:
        return Assignment(arm=forced, reason="forced", **common)
    if is_held_out(config, unit_id):
        return Assignment(arm=None, reason="holdout", **common)
    return Assignment(arm=_hashed_arm(config, unit_id), reason="hash", **common)


def is_still_valid(config: ExperimentConfig, previous: Assignment) -> bool:
    """Whether a stored assignment may be kept under the current config.

    See the module docstring for the rules and why.

    >>> old = ExperimentConfig(experiment_id="e", salt="s", arms=(Arm(name="a"), Arm(name="b")))
    >>> prev = assign(old, "user-1")
    >>> prev.arm
    'b'
    >>> ramped = ExperimentConfig(experiment_id="e", salt="s",
    ...                           arms=(Arm(name="a", weight=9.0), Arm(name="b")))
    >>> assign(ramped, "user-1").arm, is_still_valid(ramped, prev)
    ('a', True)
    >>> is_still_valid(ExperimentConfig(experiment_id="e", salt="s2", arms=old.arms), prev)
    False
    """
    if previous.experiment_id != config.experiment_id or previous.salt != config.salt:
        return False
    forced = config.forced.get(previous.unit_id)
    if forced is not None:
        return previous.reason == "forced" and previous.arm == forced
    if previous.reason == "forced":
        return False
    if previous.reason == "holdout":
        return is_held_out(config, previous.unit_id)
    arm = config.arm(previous.arm) if previous.arm is not None else None
    return arm is not None and arm.weight > 0.0


def assign_sticky(
    config: ExperimentConfig, unit_id: str, previous: Assignment | None
) -> Assignment:
    """Keep ``previous`` if still valid, else assign afresh.

    The caller stores the result when it differs from ``previous``.
    """
    if previous is not None:
        if previous.unit_id != unit_id:
            raise ValueError("previous assignment belongs to another unit")
        if is_still_valid(config, previous):
            return previous
    return assign(config, unit_id)
