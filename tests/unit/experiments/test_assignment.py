"""Deterministic assignment: uniformity, stability, precedence, stickiness."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats as sps

from relevo.experiments.assignment import (
    BUCKETS,
    Arm,
    Assignment,
    ExperimentConfig,
    arm_ranges,
    assign,
    assign_sticky,
    bucket,
    is_held_out,
    is_still_valid,
)

N_IDS = 100_000
IDS = [f"user-{i}" for i in range(N_IDS)]


def config(*weights: float, **kw: object) -> ExperimentConfig:
    arms = tuple(Arm(name=f"arm{i}", weight=w) for i, w in enumerate(weights))
    return ExperimentConfig.model_validate(
        {"experiment_id": "exp", "salt": "s1", "arms": arms, **kw}
    )


def reference_assign(
    experiment_id: str, salt: str, unit_id: str, arms: list[tuple[str, float]]
) -> str:
    """The module docstring's algorithm, written again from the text."""
    digest = hashlib.sha256(f"{experiment_id}:{salt}:{unit_id}".encode()).hexdigest()
    b = int(digest[:16], 16) % 10000
    total = 0.0
    for _, w in arms:
        total += w
    running, start = 0.0, 0
    for i, (name, w) in enumerate(arms):
        running += w
        end = 10000 if i == len(arms) - 1 else math.floor(running * 10000 / total + 0.5)
        if start <= b < end:
            return name
        start = end
    raise AssertionError("unreachable")


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_equal_weights_split_uniformly(k: int) -> None:
    cfg = config(*([1.0] * k))
    counts = Counter(assign(cfg, u).arm for u in IDS)
    assert set(counts) == {f"arm{i}" for i in range(k)}
    for arm, n in counts.items():
        assert abs(n / N_IDS - 1 / k) < 0.01, (arm, n)
    assert sps.chisquare(list(counts.values())).pvalue > 0.001


def test_unequal_weights_follow_ratios() -> None:
    cfg = config(1.0, 3.0, 6.0)
    counts = Counter(assign(cfg, u).arm for u in IDS)
    expected = [0.1, 0.3, 0.6]
    for i, share in enumerate(expected):
        assert abs(counts[f"arm{i}"] / N_IDS - share) < 0.01
    observed = [counts[f"arm{i}"] for i in range(3)]
    assert sps.chisquare(observed, [s * N_IDS for s in expected]).pvalue > 0.001


def test_ranges_cover_all_buckets_and_zero_weight_gets_nothing() -> None:
    cfg = config(0.0, 1.0, 0.0, 2.0)
    ranges = arm_ranges(cfg)
    assert ranges[0].start == 0
    assert ranges[-1].end == BUCKETS
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    assert [(r.end - r.start) for r in ranges] == [0, 3333, 0, 6667]
    assert {assign(cfg, u).arm for u in IDS[:5000]} == {"arm1", "arm3"}


names = st.text(min_size=1, max_size=20)
weights_st = st.lists(
    st.floats(min_value=0.0, max_value=1000.0, allow_nan=False), min_size=1, max_size=6
).filter(lambda ws: sum(ws) > 0)


@settings(max_examples=200, deadline=None)
@given(exp=names, salt=st.text(max_size=10), unit=st.text(max_size=30), weights=weights_st)
def test_assignment_is_a_function_of_its_inputs(
    exp: str, salt: str, unit: str, weights: list[float]
) -> None:
    cfg = ExperimentConfig(
        experiment_id=exp,
        salt=salt,
        holdout_salt=salt + "/h",
        arms=tuple(Arm(name=f"a{i}", weight=w) for i, w in enumerate(weights)),
    )
    got = assign(cfg, unit)
    # The same inputs through a JSON round trip (what the store and SDK see).
    again = assign(ExperimentConfig.model_validate_json(cfg.model_dump_json()), unit)
    assert got == again
    assert got.reason == "hash"
    assert got.arm == reference_assign(
        exp, salt, unit, [(f"a{i}", w) for i, w in enumerate(weights)]
    )
    # Overrides for other units change nothing for this one.
    other = cfg.model_copy(update={"forced": {unit + "x": "a0"}})
    assert assign(other, unit).arm == got.arm


_CHILD = """
import json, sys
from relevo.experiments.assignment import Arm, ExperimentConfig, assign
cfg = ExperimentConfig(experiment_id="exp", salt="s1", holdout_share=0.1,
                       arms=(Arm(name="a"), Arm(name="b", weight=2.0), Arm(name="c")))
print(json.dumps([assign(cfg, f"user-{i}").arm for i in range(3000)]))
"""


@pytest.mark.parametrize("hashseed", ["0", "12345"])
def test_stable_across_processes(hashseed: str) -> None:
    cfg = ExperimentConfig(
        experiment_id="exp",
        salt="s1",
        holdout_share=0.1,
        arms=(Arm(name="a"), Arm(name="b", weight=2.0), Arm(name="c")),
    )
    here = [assign(cfg, f"user-{i}").arm for i in range(3000)]
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == here


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_reimplementation_agrees() -> None:
    """The documented algorithm in JS (what the browser SDK implements)."""
    js = r"""
const crypto = require("crypto");
function bucket(e, s, u) {
  const hex = crypto.createHash("sha256").update(`${e}:${s}:${u}`, "utf8").digest("hex");
  return Number(BigInt("0x" + hex.slice(0, 16)) % 10000n);
}
function arm(e, s, u, arms) {
  let total = 0; for (const [, w] of arms) total += w;
  const b = bucket(e, s, u); let running = 0, start = 0;
  for (let i = 0; i < arms.length; i++) {
    running += arms[i][1];
    const end = i === arms.length - 1 ? 10000 : Math.floor((running * 10000) / total + 0.5);
    if (start <= b && b < end) return arms[i][0];
    start = end;
  }
}
const arms = [["a", 0.1], ["b", 0.2], ["c", 0.7]];
const out = [];
for (let i = 0; i < 2000; i++) out.push(arm("exp", "sålt", `user-${i}-é`, arms));
console.log(JSON.stringify(out));
"""
    cfg = ExperimentConfig(
        experiment_id="exp",
        salt="sålt",
        arms=(Arm(name="a", weight=0.1), Arm(name="b", weight=0.2), Arm(name="c", weight=0.7)),
    )
    out = subprocess.run(["node", "-e", js], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [assign(cfg, f"user-{i}-é").arm for i in range(2000)]


def test_forced_arm_wins_over_hash_and_holdout() -> None:
    base = config(1.0, 1.0, holdout_share=0.5)
    held = next(u for u in IDS if is_held_out(base, u))
    hashed_b = next(u for u in IDS if assign(base, u).arm == "arm1")
    cfg = config(1.0, 1.0, holdout_share=0.5, forced={held: "arm0", hashed_b: "arm0"})
    for u in (held, hashed_b):
        a = assign(cfg, u)
        assert (a.arm, a.reason) == ("arm0", "forced")


def test_holdout_share_and_independence_from_arms() -> None:
    cfg = config(1.0, 1.0, holdout_share=0.1)
    results = [assign(cfg, u) for u in IDS]
    held = sum(r.reason == "holdout" for r in results)
    assert all(r.arm is None for r in results if r.reason == "holdout")
    assert abs(held / N_IDS - 0.1) < 0.005
    # Arms split the rest evenly ...
    in_arms = Counter(r.arm for r in results if r.arm is not None)
    assert abs(in_arms["arm0"] / (N_IDS - held) - 0.5) < 0.01
    # ... and the holdout takes evenly from both hashed arms (separate salt):
    # the arm a held-out unit would have had is independent of the holdout.
    hashed = {u: ("arm0" if bucket("exp", "s1", u) < 5000 else "arm1") for u in IDS}
    table = [[0, 0], [0, 0]]
    for u, r in zip(IDS, results, strict=True):
        table[r.reason == "holdout"][hashed[u] == "arm1"] += 1
    assert sps.chi2_contingency(table, correction=False).pvalue > 0.001


def test_weight_change_moves_only_the_buckets_between_boundaries() -> None:
    before, after = config(1.0, 1.0), config(6.0, 4.0)
    for u in IDS[:20_000]:
        a, b = assign(before, u).arm, assign(after, u).arm
        if a != b:
            assert (a, b) == ("arm1", "arm0")
            assert 5000 <= bucket("exp", "s1", u) < 6000


def test_sticky_rules() -> None:
    cfg = config(1.0, 1.0)
    prev = assign(cfg, "user-7")
    assert prev.arm is not None
    assert prev.reason == "hash"
    other = "arm0" if prev.arm == "arm1" else "arm1"
    weights = {prev.arm: 1.0, other: 9.0}

    # A weight change keeps the exposed unit where it is.
    reweighted = ExperimentConfig(
        experiment_id="exp",
        salt="s1",
        arms=tuple(Arm(name=n, weight=w) for n, w in weights.items()),
    )
    assert is_still_valid(reweighted, prev)
    assert assign_sticky(reweighted, "user-7", prev) is prev
    # Its arm at zero weight or removed: reassigned.
    zeroed = config(*(0.0 if f"arm{i}" == prev.arm else 1.0 for i in range(2)))
    assert not is_still_valid(zeroed, prev)
    assert assign_sticky(zeroed, "user-7", prev).arm == other
    # New salt: everyone is re-randomized.
    assert not is_still_valid(cfg.model_copy(update={"salt": "s2"}), prev)
    # A grown holdout never swallows an exposed unit.
    assert is_still_valid(config(1.0, 1.0, holdout_share=0.99), prev)
    # Forced overrides win, and their removal returns the unit to hashing.
    forced_cfg = config(1.0, 1.0, forced={"user-7": other})
    assert not is_still_valid(forced_cfg, prev)
    forced = assign_sticky(forced_cfg, "user-7", prev)
    assert (forced.arm, forced.reason) == (other, "forced")
    assert is_still_valid(forced_cfg, forced)
    assert not is_still_valid(cfg, forced)
    assert assign_sticky(cfg, "user-7", forced) == prev
    with pytest.raises(ValueError, match="another unit"):
        assign_sticky(cfg, "user-8", prev)


def test_holdout_stickiness_follows_current_holdout() -> None:
    big = config(1.0, 1.0, holdout_share=0.5)
    unit = next(u for u in IDS if assign(big, u).reason == "holdout")
    prev = assign(big, unit)
    assert is_still_valid(big, prev)
    assert not is_still_valid(config(1.0, 1.0), prev)  # holdout removed: release the unit
    assert assign_sticky(config(1.0, 1.0), unit, prev).reason == "hash"


def test_assignment_round_trips_as_json() -> None:
    a = assign(config(1.0, 2.0), "u")
    assert Assignment.model_validate_json(a.model_dump_json()) == a


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": (Arm(name="a"), Arm(name="a"))}, "unique"),
        ({"arms": (Arm(name="a", weight=0.0),)}, "positive"),
        ({"arms": (Arm(name="a"),), "forced": {"u": "zzz"}}, "not arms"),
        ({"arms": (Arm(name="a"),), "holdout_salt": "s1"}, "differ"),
        ({"arms": ()}, "at least 1"),
        ({"arms": (Arm(name="a"),), "holdout_share": 1.0}, "less than 1"),
    ],
)
def test_invalid_configs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExperimentConfig.model_validate({"experiment_id": "exp", "salt": "s1", **kwargs})


def test_negative_or_nan_weight_rejected() -> None:
    with pytest.raises(ValidationError):
        Arm(name="a", weight=-1.0)
    with pytest.raises(ValidationError):
        Arm(name="a", weight=float("nan"))
