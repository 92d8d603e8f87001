"""Thompson sampling: convergence to the best arm, exploration floor, reporting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from relevo.experiments.bandits import BanditState, BetaArm, allocation, choose, new_state, update

RATES = {"a": 0.02, "b": 0.03, "c": 0.05}
MIN_SHARE = 0.05


def test_best_arm_gets_most_traffic_and_every_arm_keeps_its_floor() -> None:
    rng = np.random.default_rng(2024)
    state = new_state(list(RATES), min_share=MIN_SHARE)
    decisions = 20_000
    counts = dict.fromkeys(RATES, 0)
    for _ in range(decisions):
        arm = choose(state, rng)
        counts[arm] += 1
        state = update(state, arm, reward=bool(rng.random() < RATES[arm]))
    shares = {arm: n / decisions for arm, n in counts.items()}
    print(f"bandit traffic shares after {decisions} decisions: {shares}")
    assert shares["c"] > 0.70
    # Each arm is chosen with probability >= MIN_SHARE at every step, so its
    # share can fall below it only by binomial noise (3 standard deviations).
    tolerance = 3 * math.sqrt(MIN_SHARE * (1 - MIN_SHARE) / decisions)
    assert all(s >= MIN_SHARE - tolerance for s in shares.values()), shares
    assert sum(c.successes + c.failures for c in state.arms.values()) == decisions
    report = allocation(state)
    assert max(report, key=lambda a: report[a]) == "c"
    assert all(p >= MIN_SHARE for p in report.values())


def test_choose_follows_the_reported_allocation() -> None:
    state = BanditState(
        arms={
            "a": BetaArm(successes=20, failures=980),
            "b": BetaArm(successes=25, failures=975),
            "c": BetaArm(successes=28, failures=972),
        },
        min_share=0.1,
    )
    expected = allocation(state, draws=50_000)
    assert sum(expected.values()) == pytest.approx(1.0)
    assert all(0.1 <= p < 0.8 for p in expected.values())  # an interior case
    rng = np.random.default_rng(9)
    n = 20_000
    picks = [choose(state, rng) for _ in range(n)]
    for arm, p in expected.items():
        assert picks.count(arm) / n == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n) + 0.005)


def test_allocation_is_reproducible_and_bounded() -> None:
    state = new_state(["x", "y"], min_share=0.2)
    for _ in range(50):
        state = update(state, "x", reward=True)
    assert allocation(state, seed=3) == allocation(state, seed=3)
    shares = allocation(state)
    # x ~ Beta(51, 1), y ~ Beta(1, 1): P(y > x) = E[1 - x] = 1/52 exactly.
    assert shares["y"] == pytest.approx(0.2 + 0.6 / 52, abs=0.003)
    assert shares["x"] == pytest.approx(1 - shares["y"])


def test_floor_extremes() -> None:
    uniform = new_state(["a", "b", "c", "d"], min_share=0.25)
    assert set(allocation(uniform).values()) == {0.25}
    pure = new_state(["a", "b"], min_share=0.0)
    for _ in range(100):
        pure = update(pure, "a", reward=True)
        pure = update(pure, "b", reward=False)
    assert allocation(pure)["b"] == 0.0


def test_state_is_plain_data() -> None:
    state = update(update(new_state(["a", "b"]), "a", reward=True), "b", reward=False)
    assert state.arms["a"] == BetaArm(successes=1, failures=0)
    assert state.arms["b"] == BetaArm(successes=0, failures=1)
    assert BanditState.model_validate_json(state.model_dump_json()) == state


def test_invalid_use() -> None:
    with pytest.raises(ValidationError, match="exceeds all traffic"):
        new_state(["a", "b", "c"], min_share=0.4)
    with pytest.raises(ValueError, match="unique"):
        new_state(["a", "a"])
    with pytest.raises(KeyError, match="zzz"):
        update(new_state(["a"]), "zzz", reward=True)
    with pytest.raises(ValidationError):
        BanditState(arms={})
