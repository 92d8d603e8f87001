"""Experiment statistics: scipy references, A/A calibration, peeking, SRM, report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import integrate
from scipy import stats as sps

from relevo.experiments.stats import (
    ArmStats,
    ReportConfig,
    always_valid_p_value,
    experiment_report,
    mean_estimate,
    probability_to_beat_control,
    proportion_estimate,
    srm_check,
    two_proportion_ztest,
    welch_ttest,
)

ALPHA = 0.05


# --- agreement with references -------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    n_c=st.integers(1, 5000),
    n_a=st.integers(1, 5000),
    f_c=st.floats(0, 1),
    f_a=st.floats(0, 1),
)
def test_ztest_matches_chi_square_of_the_2x2_table(
    n_c: int, n_a: int, f_c: float, f_a: float
) -> None:
    x_c, x_a = round(f_c * n_c), round(f_a * n_a)
    t = two_proportion_ztest(x_c, n_c, x_a, n_a)
    table = np.array([[x_c, n_c - x_c], [x_a, n_a - x_a]])
    if 0 in table.sum(axis=0):
        assert t.p_value == 1.0  # all successes or all failures in both arms
        return
    chi2 = sps.chi2_contingency(table, correction=False)
    assert t.statistic is not None
    assert t.statistic**2 == pytest.approx(chi2.statistic, rel=1e-9, abs=1e-12)
    assert t.p_value == pytest.approx(chi2.pvalue, rel=1e-7, abs=1e-300)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 10_000), f=st.floats(0, 1), conf=st.sampled_from([0.9, 0.95, 0.99]))
def test_wilson_interval_matches_closed_form(n: int, f: float, conf: float) -> None:
    k = round(f * n)
    e = proportion_estimate(k, n, conf)
    z = sps.norm.ppf(0.5 + conf / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert e.ci_low == pytest.approx(max(0.0, centre - half), abs=1e-9)
    assert e.ci_high == pytest.approx(min(1.0, centre + half), abs=1e-9)


def test_welch_and_mean_interval_from_sums_match_raw_data() -> None:
    rng = np.random.default_rng(1)
    a = rng.lognormal(1.0, 1.0, size=300) * (rng.random(300) < 0.3)
    b = rng.lognormal(1.2, 1.0, size=250) * (rng.random(250) < 0.3)
    t = welch_ttest(len(a), a.sum(), (a * a).sum(), len(b), b.sum(), (b * b).sum())
    ref = sps.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert t.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (t.ci_low, t.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)

    m = mean_estimate(len(a), a.sum(), (a * a).sum())
    ref1 = sps.ttest_1samp(a, 0.0).confidence_interval(0.95)
    assert (m.ci_low, m.ci_high) == pytest.approx((ref1.low, ref1.high), rel=1e-9)


def test_degenerate_inputs() -> None:
    assert proportion_estimate(0, 0).value is None
    assert mean_estimate(0, 0.0, 0.0).value is None
    assert mean_estimate(1, 5.0, 25.0).ci_low is None
    same = welch_ttest(3, 3.0, 3.0, 3, 3.0, 3.0)
    assert (same.p_value, same.statistic) == (1.0, 0.0)
    assert welch_ttest(3, 3.0, 3.0, 3, 6.0, 12.0).p_value == 0.0
    with pytest.raises(ValueError, match="at least one"):
        two_proportion_ztest(0, 0, 1, 10)
    with pytest.raises(ValueError, match="at least two"):
        welch_ttest(1, 1.0, 1.0, 5, 5.0, 5.0)


def test_probability_to_beat_control_matches_integration() -> None:
    x_c, n_c, x_a, n_a = 12, 200, 20, 210
    post_c = sps.beta(1 + x_c, 1 + n_c - x_c)
    post_a = sps.beta(1 + x_a, 1 + n_a - x_a)
    exact, _ = integrate.quad(lambda x: post_a.pdf(x) * post_c.cdf(x), 0, 1, limit=200)
    got = probability_to_beat_control(x_c, n_c, x_a, n_a)
    assert got == pytest.approx(exact, abs=0.005)
    assert got == probability_to_beat_control(x_c, n_c, x_a, n_a)  # fixed seed
    swapped = probability_to_beat_control(x_a, n_a, x_c, n_c, seed=1)
    assert got + swapped == pytest.approx(1.0, abs=0.01)


# --- A/A calibration -----------------------------------------------------------


def test_aa_ztest_false_positive_rate() -> None:
    rng = np.random.default_rng(20240601)
    sims, n, rate = 1000, 2000, 0.05
    x_c = rng.binomial(n, rate, size=sims)
    x_a = rng.binomial(n, rate, size=sims)
    rejections = sum(
        two_proportion_ztest(int(c), n, int(a), n).p_value < ALPHA
        for c, a in zip(x_c, x_a, strict=True)
    )
    fpr = rejections / sims
    print(f"A/A z-test false-positive rate: {fpr:.3f}")
    assert 0.03 <= fpr <= 0.07


def test_aa_welch_false_positive_rate_on_skewed_revenue() -> None:
    rng = np.random.default_rng(7)
    sims, n = 1000, 1000

    def revenue() -> np.ndarray:
        # 10% of users buy; basket values are log-normal: heavily skewed.
        buys = rng.random((sims, n)) < 0.10
        return np.where(buys, rng.lognormal(3.0, 1.0, size=(sims, n)), 0.0)

    a, b = revenue(), revenue()
    rejections = 0
    for i in range(sims):
        t = welch_ttest(n, a[i].sum(), (a[i] ** 2).sum(), n, b[i].sum(), (b[i] ** 2).sum())
        rejections += t.p_value < ALPHA
    fpr = rejections / sims
    print(f"A/A Welch false-positive rate: {fpr:.3f}")
    assert 0.03 <= fpr <= 0.07


def _peeking_sim(
    rng: np.random.Generator, rate_c: float, rate_a: float, sims: int = 200, peeks: int = 20
) -> tuple[float, float]:
    """Share of simulations ever rejected by (mSPRT, naive z-test) over the peeks."""
    batch = 250
    c = rng.binomial(batch, rate_c, size=(sims, peeks)).cumsum(axis=1)
    a = rng.binomial(batch, rate_a, size=(sims, peeks)).cumsum(axis=1)
    effect = ReportConfig().msprt_effect_size
    msprt = naive = 0
    for s in range(sims):
        p_seq, naive_hit = 1.0, False
        for k in range(peeks):
            n = batch * (k + 1)
            x_c, x_a = int(c[s, k]), int(a[s, k])
            t = two_proportion_ztest(x_c, n, x_a, n)
            naive_hit |= t.p_value < ALPHA
            pooled = (x_c + x_a) / (2 * n)
            var = pooled * (1 - pooled)
            if var > 0:
                p_seq = always_valid_p_value(t.difference, var * 2 / n, effect**2 * var, p_seq)
        msprt += p_seq < ALPHA
        naive += naive_hit
    return msprt / sims, naive / sims


def test_msprt_with_peeking_keeps_false_positive_rate() -> None:
    msprt_fpr, naive_fpr = _peeking_sim(np.random.default_rng(11), 0.10, 0.10)
    print(f"peeking x20: mSPRT FPR {msprt_fpr:.3f}, naive z-test FPR {naive_fpr:.3f}")
    assert msprt_fpr <= ALPHA
    # The danger it guards against is real: naive peeking inflates the FPR.
    assert naive_fpr > 2 * ALPHA


def test_msprt_still_detects_a_real_effect() -> None:
    power, _ = _peeking_sim(np.random.default_rng(12), 0.10, 0.13)
    print(f"mSPRT power, 10% -> 13% at 5000 users/arm: {power:.3f}")
    assert power > 0.8


def test_aa_msprt_on_revenue_through_the_report_with_peeking() -> None:
    rng = np.random.default_rng(5)
    sims, peeks, batch = 60, 20, 200
    rejections = 0
    for _ in range(sims):
        totals = {"control": np.zeros(3), "b": np.zeros(3)}  # users, sum, sum of squares
        report = None
        for _ in range(peeks):
            for arm in totals:
                r = np.where(rng.random(batch) < 0.2, rng.lognormal(3.0, 1.0, batch), 0.0)
                totals[arm] += (batch, r.sum(), (r * r).sum())
            arms = [
                ArmStats(name=name, users=int(t[0]), revenue_sum=t[1], revenue_sum_sq=t[2])
                for name, t in totals.items()
            ]
            report = experiment_report(
                "aa",
                arms,
                control="control",
                previous=report,
                config=ReportConfig(bayes_draws=1000),
            )
        assert report is not None
        rev = report.comparison("b", "revenue_per_user")
        assert rev is not None
        rejections += rev.sequentially_significant
    assert rejections / sims <= ALPHA


# --- SRM ----------------------------------------------------------------------


def test_srm_flags_52_48_and_not_50_50() -> None:
    equal = {"a": 1.0, "b": 1.0}
    flagged = srm_check({"a": 10_400, "b": 9_600}, equal)
    assert flagged.flagged
    assert flagged.p_value is not None
    assert flagged.p_value < 1e-6
    assert not srm_check({"a": 10_000, "b": 10_000}, equal).flagged
    rng = np.random.default_rng(3)
    a = int(rng.binomial(20_000, 0.5))
    assert not srm_check({"a": a, "b": 20_000 - a}, equal).flagged


def test_srm_respects_weights_and_zero_weight_arms() -> None:
    weights = {"a": 1.0, "b": 3.0}
    assert not srm_check({"a": 5_000, "b": 15_000}, weights).flagged
    assert srm_check({"a": 10_000, "b": 10_000}, weights).flagged
    assert srm_check({"a": 100, "b": 100, "off": 1}, {"a": 1, "b": 1, "off": 0}).flagged
    nothing = srm_check({"a": 0, "b": 0}, {"a": 1, "b": 1})
    assert (nothing.flagged, nothing.p_value) == (False, None)
    with pytest.raises(ValueError, match="same arms"):
        srm_check({"a": 1}, {"b": 1.0})


# --- report --------------------------------------------------------------------


def _arms() -> list[ArmStats]:
    return [
        ArmStats(
            name="control",
            users=10_000,
            exposures=40_000,
            clicks=1_200,
            conversions=500,
            revenue_sum=25_000.0,
            revenue_sum_sq=1_500_000.0,
        ),
        ArmStats(
            name="b",
            users=10_050,
            exposures=40_500,
            clicks=1_450,
            conversions=520,
            revenue_sum=25_500.0,
            revenue_sum_sq=1_560_000.0,
        ),
        ArmStats(name="empty"),
    ]


def test_report_is_complete_and_json_serializable() -> None:
    report = experiment_report("exp", _arms(), control="control")
    payload = json.loads(json.dumps(report.model_dump(mode="json")))
    assert payload["control"] == "control"
    assert [a["name"] for a in payload["arms"]] == ["control", "b", "empty"]
    assert {(c["arm"], c["metric"]) for c in payload["comparisons"]} == {
        (arm, m) for arm in ("b", "empty") for m in ("ctr", "conversion_rate", "revenue_per_user")
    }
    ctr = report.comparison("b", "ctr")
    assert ctr is not None
    assert ctr.significant
    assert ctr.ci_low is not None
    assert ctr.ci_low > 0
    assert ctr.probability_to_beat_control is not None
    assert ctr.probability_to_beat_control > 0.99
    conv = report.comparison("b", "conversion_rate")
    assert conv is not None
    assert not conv.significant
    empty = report.comparison("empty", "revenue_per_user")
    assert empty is not None
    assert (empty.p_value, empty.difference, empty.significant) == (None, None, False)
    assert payload["arms"][2]["ctr"]["value"] is None
    # The empty arm has no users while its weight says a third: SRM.
    assert report.srm.flagged
    assert not experiment_report("exp", _arms()[:2], control="control").srm.flagged


def test_always_valid_p_values_never_increase_across_reports() -> None:
    arms = _arms()[:2]
    first = experiment_report("exp", arms, control="control")
    worse = [a.model_copy(update={"clicks": 1_200}) for a in arms]  # the effect vanishes
    second = experiment_report("exp", worse, control="control", previous=first)
    for metric in ("ctr", "conversion_rate", "revenue_per_user"):
        old, new = first.comparison("b", metric), second.comparison("b", metric)
        assert old is not None
        assert new is not None
        assert new.always_valid_p_value is not None
        assert old.always_valid_p_value is not None
        assert new.always_valid_p_value <= old.always_valid_p_value
    fresh = experiment_report("exp", worse, control="control").comparison("b", "ctr")
    kept = second.comparison("b", "ctr")
    assert fresh is not None
    assert kept is not None
    assert fresh.always_valid_p_value == 1.0
    assert kept.always_valid_p_value is not None
    assert kept.always_valid_p_value < 0.05


def test_report_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="control"):
        experiment_report("exp", _arms(), control="nope")
    with pytest.raises(ValueError, match="unique"):
        experiment_report("exp", [*_arms(), ArmStats(name="b")], control="control")
    with pytest.raises(ValidationError, match="exceed exposures"):
        ArmStats(name="a", exposures=1, clicks=2)
    with pytest.raises(ValidationError, match="exceed users"):
        ArmStats(name="a", users=1, conversions=2)
