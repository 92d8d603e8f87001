"""Per-arm KPIs, tests against control and a sample-ratio check, from counters.

Why sufficient statistics: the core keeps, per experiment and arm, a handful of
counters it can increment atomically in Redis or the embedded store
(:class:`ArmStats`). Every number in a report is a pure function of them, so a
report can be computed on any API process at any time, and replaying the same
events gives the same report.

The counters and what they mean
-------------------------------

- ``users``: units assigned to the arm and exposed at least once.
- ``exposures`` and ``clicks``: decisions shown and clicks attributed to them.
  CTR = clicks / exposures. Exposures of one user are correlated, so the CTR
  interval and test (which treat exposures as independent) are somewhat
  optimistic; the user-level metrics below are the ones to decide on.
- ``conversions``: users who converted at least once (so ``<= users``).
  Conversion rate = conversions / users.
- ``revenue_sum`` and ``revenue_sum_sq``: the sum over users of each user's
  total revenue ``r_u`` and of ``r_u ** 2``. When a user with running total
  ``r`` spends ``x`` more, add ``x`` to the first and ``2*r*x + x*x`` to the
  second. Users who spent nothing count as zeros through ``users``.
  Revenue per user = revenue_sum / users.

The statistics
--------------

- Proportions: Wilson score interval (``scipy.stats.binomtest``), which stays
  inside ``[0, 1]`` and behaves at small counts, unlike the Wald interval.
- Means: Student-t interval from the sample variance.
- Against control, fixed horizon: the pooled two-proportion z-test for CTR and
  conversion rate (interval for the difference: unpooled Wald), and Welch's
  t-test for revenue per user (``scipy.stats.ttest_ind_from_stats``; revenue is
  skewed and the arms' variances differ, which Welch tolerates and Student's
  test does not). These p-values are valid only when read once, at a sample
  size fixed in advance.
- Peeking-safe: the always-valid p-value of the mixture sequential probability
  ratio test (mSPRT; Johari, Koomen, Pekelis & Walsh, "Always Valid
  Inference", 2017/2022), with a normal mixing distribution over the effect.
  For an estimated difference ``d`` with variance ``v`` and mixing variance
  ``tau**2``, the mixture likelihood ratio against ``d = 0`` is::

      L = sqrt(v / (v + tau**2)) * exp(tau**2 * d**2 / (2 * v * (v + tau**2)))

  (Johari et al.'s eq. with ``v = V/n``). By Ville's inequality
  ``P(exists n: L_n >= 1/alpha) <= alpha`` under the null, so ``p_n = min(1,
  min_{k<=n} 1/L_k)`` may be watched continuously and acted on at any time.
  ``v`` is the pooled (null) variance of the difference and ``tau`` is set in
  standardized units: ``tau = effect_size * sigma``, with ``sigma`` the pooled
  per-user standard deviation, so one default (0.1, a small Cohen's d) fits
  every metric. The test is most powerful near that effect size; a smaller one
  loses power badly at small samples, a larger one costs only a logarithmic
  factor. The normal approximation needs a few hundred users per arm.
- Bayesian: the posterior probability that the arm's rate beats control's,
  with independent Beta(1, 1) priors, by Monte Carlo with a fixed seed (so a
  report is reproducible). It is a descriptive number, not a peeking-safe
  decision rule.
- Sample ratio mismatch: a chi-square goodness-of-fit test of the users per
  arm against the configured weights (``scipy.stats.chisquare``), flagged at
  ``p < 0.001``. A mismatch means assignment or logging is broken (bots,
  redirects, lost exposures) and the other numbers should not be trusted.

No correction for multiple comparisons (several arms times three metrics) is
applied; decide on one primary metric in advance.

>>> control = ArmStats(name="control", users=1000, exposures=5000, clicks=150,
...                    conversions=50, revenue_sum=2500.0, revenue_sum_sq=150000.0)
>>> treatment = ArmStats(name="new", users=1010, exposures=5050, clicks=210,
...                      conversions=70, revenue_sum=3300.0, revenue_sum_sq=200000.0)
>>> report = experiment_report("exp", [control, treatment], control="control")
>>> report.srm.flagged
False
>>> ctr = report.comparisons[0]
>>> ctr.metric, round(ctr.difference, 4), round(ctr.p_value, 4), ctr.significant
('ctr', 0.0116, 0.0018, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats as sps

__all__ = [
    "ArmMetrics",
    "ArmStats",
    "Comparison",
    "DifferenceTest",
    "Estimate",
    "ExperimentReport",
    "Metric",
    "ReportConfig",
    "SrmCheck",
    "always_valid_p_value",
    "arm_metrics",
    "experiment_report",
    "mean_estimate",
    "probability_to_beat_control",
    "proportion_estimate",
    "srm_check",
    "two_proportion_ztest",
    "welch_ttest",
]

Metric = Literal["ctr", "conversion_rate", "revenue_per_user"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ArmStats(BaseModel):
    """Sufficient statistics of one arm: counters the core maintains."""

    model_config = _FROZEN

    name: str = Field(min_length=1)
    users: int = Field(default=0, ge=0)
    exposures: int = Field(default=0, ge=0)
    clicks: int = Field(default=0, ge=0)
    conversions: int = Field(default=0, ge=0)
    revenue_sum: float = Field(default=0.0, allow_inf_nan=False)
    revenue_sum_sq: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> ArmStats:
        if self.clicks > self.exposures:
            raise ValueError("clicks must not exceed exposures (CTR is a proportion)")
        if self.conversions > self.users:
            raise ValueError("conversions counts converting users, so it must not exceed users")
        return self


class Estimate(BaseModel):
    """A point estimate with its two-sided interval; None where undefined."""

    model_config = _FROZEN

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class DifferenceTest(BaseModel):
    """Arm minus control: difference, its interval, statistic and p-value."""

    model_config = _FROZEN

    difference: float
    ci_low: float | None
    ci_high: float | None
    statistic: float | None
    p_value: float


def proportion_estimate(successes: int, trials: int, confidence: float = 0.95) -> Estimate:
    """Rate with a Wilson score interval.

    >>> e = proportion_estimate(30, 1000)
    >>> round(e.value, 3), round(e.ci_low, 4), round(e.ci_high, 4)
    (0.03, 0.0211, 0.0425)
    """
    if trials == 0:
        return Estimate(value=None, ci_low=None, ci_high=None, n=0)
    ci = sps.binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return Estimate(
        value=successes / trials, ci_low=float(ci.low), ci_high=float(ci.high), n=trials
    )


def _variance(n: int, total: float, total_sq: float) -> float:
    # Sample variance from sums; clamped because rounding can make it
    # slightly negative when all values are equal.
    return max(0.0, (total_sq - total * total / n) / (n - 1))


def mean_estimate(n: int, total: float, total_sq: float, confidence: float = 0.95) -> Estimate:
    """Mean with a Student-t interval, from ``n``, ``sum`` and ``sum of squares``.

    >>> e = mean_estimate(4, 10.0, 30.0)   # values 1, 2, 3, 4
    >>> e.value, round(e.ci_low, 3), round(e.ci_high, 3)
    (2.5, 0.446, 4.554)
    """
    if n == 0:
        return Estimate(value=None, ci_low=None, ci_high=None, n=0)
    mean = total / n
    if n == 1:
        return Estimate(value=mean, ci_low=None, ci_high=None, n=1)
    se = math.sqrt(_variance(n, total, total_sq) / n)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Estimate(value=mean, ci_low=mean - half, ci_high=mean + half, n=n)


def two_proportion_ztest(
    x_control: int, n_control: int, x_arm: int, n_arm: int, confidence: float = 0.95
) -> DifferenceTest:
    """Pooled two-sided z-test of ``x_arm/n_arm - x_control/n_control``.

    >>> t = two_proportion_ztest(100, 1000, 130, 1000)
    >>> round(t.difference, 3), round(t.statistic, 3), round(t.p_value, 4)
    (0.03, 2.103, 0.0355)
    """
    if n_control <= 0 or n_arm <= 0:
        raise ValueError("both arms need at least one trial")
    p_c, p_a = x_control / n_control, x_arm / n_arm
    diff = p_a - p_c
    pooled = (x_control + x_arm) / (n_control + n_arm)
    se0 = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_control + 1.0 / n_arm))
    se1 = math.sqrt(p_c * (1.0 - p_c) / n_control + p_a * (1.0 - p_a) / n_arm)
    zq = float(sps.norm.ppf(0.5 + confidence / 2))
    if se0 == 0.0:
        # Both arms all-failure or all-success: identical, no evidence.
        return DifferenceTest(
            difference=diff, ci_low=diff, ci_high=diff, statistic=0.0, p_value=1.0
        )
    z = diff / se0
    return DifferenceTest(
        difference=diff,
        ci_low=diff - zq * se1,
        ci_high=diff + zq * se1,
        statistic=z,
        p_value=float(2.0 * sps.norm.sf(abs(z))),
    )


def welch_ttest(
    n_control: int,
    sum_control: float,
    sum_sq_control: float,
    n_arm: int,
    sum_arm: float,
    sum_sq_arm: float,
    confidence: float = 0.95,
) -> DifferenceTest:
    """Welch's two-sided t-test of mean(arm) - mean(control), from sums.

    >>> t = welch_ttest(4, 10.0, 30.0, 4, 14.0, 54.0)   # 1..4 against 2..5
    >>> t.difference, round(t.p_value, 3)
    (1.0, 0.315)
    """
    if n_control < 2 or n_arm < 2:
        raise ValueError("both arms need at least two units")
    m_c, m_a = sum_control / n_control, sum_arm / n_arm
    var_c, var_a = (
        _variance(n_control, sum_control, sum_sq_control),
        _variance(n_arm, sum_arm, sum_sq_arm),
    )
    diff = m_a - m_c
    v_c, v_a = var_c / n_control, var_a / n_arm
    if v_c + v_a == 0.0:
        # No spread at all: the difference is exact.
        p = 1.0 if diff == 0.0 else 0.0
        stat = 0.0 if diff == 0.0 else None
        return DifferenceTest(difference=diff, ci_low=diff, ci_high=diff, statistic=stat, p_value=p)
    res = sps.ttest_ind_from_stats(
        m_a, math.sqrt(var_a), n_arm, m_c, math.sqrt(var_c), n_control, equal_var=False
    )
    df = (v_c + v_a) ** 2 / (v_c**2 / (n_control - 1) + v_a**2 / (n_arm - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(v_c + v_a)
    return DifferenceTest(
        difference=diff,
        ci_low=diff - half,
        ci_high=diff + half,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
    )


def always_valid_p_value(
    difference: float, variance: float, tau_sq: float, previous: float = 1.0
) -> float:
    """mSPRT always-valid p-value after one more look; ``previous`` is the last one.

    ``variance`` is the variance of the estimated ``difference`` (under the
    null), ``tau_sq`` the variance of the normal mixing distribution.

    >>> p1 = always_valid_p_value(0.01, 1e-5, 1e-4)
    >>> p2 = always_valid_p_value(0.0, 1e-5, 1e-4, previous=p1)   # never goes up
    >>> round(p1, 4), p2 == p1
    (0.0352, True)
    """
    if tau_sq <= 0.0:
        raise ValueError("tau_sq must be positive")
    if variance <= 0.0:
        return previous if difference == 0.0 else 0.0
    # In logs: the exponential overflows for large effects at large samples.
    log_lr = 0.5 * math.log(variance / (variance + tau_sq)) + tau_sq * difference**2 / (
        2.0 * variance * (variance + tau_sq)
    )
    return min(previous, 1.0, math.exp(-log_lr) if log_lr < 700 else 0.0)


def probability_to_beat_control(
    x_control: int,
    n_control: int,
    x_arm: int,
    n_arm: int,
    draws: int = 100_000,
    seed: int = 0,
) -> float:
    """P(rate_arm > rate_control) under independent Beta(1, 1) priors.

    Monte Carlo with a fixed seed: the same counts always give the same number.

    >>> round(probability_to_beat_control(100, 1000, 130, 1000), 2)
    0.98
    """
    rng = np.random.default_rng(seed)
    c = rng.beta(1 + x_control, 1 + n_control - x_control, size=draws)
    a = rng.beta(1 + x_arm, 1 + n_arm - x_arm, size=draws)
    return float(np.mean(a > c))


class SrmCheck(BaseModel):
    """Sample-ratio-mismatch check: observed users per arm against weights."""

    model_config = _FROZEN

    observed: dict[str, int]
    expected_shares: dict[str, float]
    statistic: float | None
    p_value: float | None
    threshold: float
    flagged: bool


def srm_check(
    users: Mapping[str, int], weights: Mapping[str, float], threshold: float = 0.001
) -> SrmCheck:
    """Chi-square goodness of fit of ``users`` per arm against ``weights``.

    >>> srm_check({"a": 10400, "b": 9600}, {"a": 1.0, "b": 1.0}).flagged
    True
    >>> srm_check({"a": 10040, "b": 9960}, {"a": 1.0, "b": 1.0}).flagged
    False
    """
    if set(users) != set(weights):
        raise ValueError("users and weights must name the same arms")
    total_w = sum(weights.values())
    if total_w <= 0.0:
        raise ValueError("the total weight must be positive")
    shares = {k: w / total_w for k, w in weights.items()}
    total = sum(users.values())
    live = [k for k in users if shares[k] > 0.0]
    result = {"observed": dict(users), "expected_shares": shares, "threshold": threshold}
    if any(users[k] > 0 for k in users if shares[k] == 0.0):
        # Units in an arm that should get none: a mismatch by definition.
        return SrmCheck(statistic=None, p_value=0.0, flagged=True, **result)
    if total == 0 or len(live) < 2:
        return SrmCheck(statistic=None, p_value=None, flagged=False, **result)
    observed = np.array([users[k] for k in live], dtype=float)
    expected = np.array([shares[k] for k in live]) * total
    res = sps.chisquare(observed, expected * (observed.sum() / expected.sum()))
    p = float(res.pvalue)
    return SrmCheck(statistic=float(res.statistic), p_value=p, flagged=p < threshold, **result)


class ArmMetrics(BaseModel):
    """The KPIs of one arm with their intervals."""

    model_config = _FROZEN

    name: str
    users: int
    exposures: int
    ctr: Estimate
    conversion_rate: Estimate
    revenue_per_user: Estimate


def arm_metrics(arm: ArmStats, confidence: float = 0.95) -> ArmMetrics:
    """Compute one arm's KPIs with intervals."""
    return ArmMetrics(
        name=arm.name,
        users=arm.users,
        exposures=arm.exposures,
        ctr=proportion_estimate(arm.clicks, arm.exposures, confidence),
        conversion_rate=proportion_estimate(arm.conversions, arm.users, confidence),
        revenue_per_user=mean_estimate(arm.users, arm.revenue_sum, arm.revenue_sum_sq, confidence),
    )


class Comparison(BaseModel):
    """One metric of one arm against control. Fields are None where undefined."""

    model_config = _FROZEN

    metric: Metric
    arm: str
    control: str
    control_value: float | None
    arm_value: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None
    test: Literal["z", "welch"]
    statistic: float | None
    p_value: float | None
    significant: bool
    """Fixed-horizon: trustworthy only if read once at the planned sample size."""
    always_valid_p_value: float | None
    sequentially_significant: bool
    """From the always-valid p-value: safe to act on at any look."""
    probability_to_beat_control: float | None


class ReportConfig(BaseModel):
    """Knobs of :func:`experiment_report`; the defaults suit most experiments."""

    model_config = _FROZEN

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    srm_threshold: float = Field(default=0.001, gt=0.0, lt=1.0)
    msprt_effect_size: float = Field(default=0.1, gt=0.0)
    bayes_draws: int = Field(default=100_000, ge=1000)
    seed: int = 0


class ExperimentReport(BaseModel):
    """Everything a dashboard shows for an experiment; ``model_dump(mode="json")``."""

    model_config = _FROZEN

    experiment_id: str
    control: str
    alpha: float
    arms: list[ArmMetrics]
    comparisons: list[Comparison]
    srm: SrmCheck

    def comparison(self, arm: str, metric: Metric) -> Comparison | None:
        """Return the comparison of ``arm`` on ``metric``, if present."""
        for c in self.comparisons:
            if c.arm == arm and c.metric == metric:
                return c
        return None


def _comparison(
    metric: Metric,
    control: ArmStats,
    arm: ArmStats,
    values: tuple[float | None, float | None],
    test: DifferenceTest | None,
    always_valid_p: float,
    alpha: float,
    prob_beat: float | None = None,
) -> Comparison:
    """Assemble a comparison; ``test`` is None when the data cannot support one."""
    control_value, arm_value = values
    lift = None
    if test is not None and control_value:
        lift = test.difference / control_value
    return Comparison(
        metric=metric,
        arm=arm.name,
        control=control.name,
        control_value=control_value,
        arm_value=arm_value,
        difference=test.difference if test else None,
        ci_low=test.ci_low if test else None,
        ci_high=test.ci_high if test else None,
        relative_lift=lift,
        test="welch" if metric == "revenue_per_user" else "z",
        statistic=test.statistic if test else None,
        p_value=test.p_value if test else None,
        significant=test is not None and test.p_value < alpha,
        always_valid_p_value=always_valid_p,
        sequentially_significant=always_valid_p < alpha,
        probability_to_beat_control=prob_beat,
    )


def _proportion_comparison(
    metric: Metric,
    control: ArmStats,
    arm: ArmStats,
    x: tuple[int, int],
    n: tuple[int, int],
    config: ReportConfig,
    previous_p: float,
) -> Comparison:
    (x_c, x_a), (n_c, n_a) = x, n
    values = (x_c / n_c if n_c else None, x_a / n_a if n_a else None)
    if n_c == 0 or n_a == 0:
        return _comparison(metric, control, arm, values, None, previous_p, config.alpha)
    t = two_proportion_ztest(x_c, n_c, x_a, n_a, 1.0 - config.alpha)
    pooled = (x_c + x_a) / (n_c + n_a)
    unit_var = pooled * (1.0 - pooled)
    avp = previous_p
    if unit_var > 0.0:
        avp = always_valid_p_value(
            t.difference,
            unit_var * (1.0 / n_c + 1.0 / n_a),
            config.msprt_effect_size**2 * unit_var,
            previous_p,
        )
    prob = probability_to_beat_control(x_c, n_c, x_a, n_a, config.bayes_draws, config.seed)
    return _comparison(metric, control, arm, values, t, avp, config.alpha, prob)


def _revenue_comparison(
    control: ArmStats, arm: ArmStats, config: ReportConfig, previous_p: float
) -> Comparison:
    metric: Metric = "revenue_per_user"
    n_c, n_a = control.users, arm.users
    values = (
        control.revenue_sum / n_c if n_c else None,
        arm.revenue_sum / n_a if n_a else None,
    )
    if n_c < 2 or n_a < 2:
        return _comparison(metric, control, arm, values, None, previous_p, config.alpha)
    t = welch_ttest(
        n_c,
        control.revenue_sum,
        control.revenue_sum_sq,
        n_a,
        arm.revenue_sum,
        arm.revenue_sum_sq,
        1.0 - config.alpha,
    )
    var_c = _variance(n_c, control.revenue_sum, control.revenue_sum_sq)
    var_a = _variance(n_a, arm.revenue_sum, arm.revenue_sum_sq)
    pooled_var = ((n_c - 1) * var_c + (n_a - 1) * var_a) / (n_c + n_a - 2)
    avp = previous_p
    if pooled_var > 0.0:
        avp = always_valid_p_value(
            t.difference,
            pooled_var * (1.0 / n_c + 1.0 / n_a),
            config.msprt_effect_size**2 * pooled_var,
            previous_p,
        )
    return _comparison(metric, control, arm, values, t, avp, config.alpha)


def _previous_p(previous: ExperimentReport | None, arm: str, metric: Metric) -> float:
    old = previous.comparison(arm, metric) if previous is not None else None
    if old is None or old.always_valid_p_value is None:
        return 1.0
    return old.always_valid_p_value


def experiment_report(
    experiment_id: str,
    arms: Sequence[ArmStats],
    control: str,
    weights: Mapping[str, float] | None = None,
    config: ReportConfig | None = None,
    previous: ExperimentReport | None = None,
) -> ExperimentReport:
    """Full report: per-arm KPIs, every arm against control, and the SRM check.

    ``weights`` default to equal. Pass the last report as ``previous`` so the
    always-valid p-values keep their running minimum (they never go up).
    """
    config = config or ReportConfig()
    by_name = {a.name: a for a in arms}
    if len(by_name) != len(arms):
        raise ValueError("arm names must be unique")
    if control not in by_name:
        raise ValueError(f"control arm {control!r} is not among the arms")
    weights = weights if weights is not None else {a.name: 1.0 for a in arms}
    ctrl = by_name[control]
    comparisons: list[Comparison] = []
    for arm in arms:
        if arm.name == control:
            continue
        comparisons.append(
            _proportion_comparison(
                "ctr",
                ctrl,
                arm,
                (ctrl.clicks, arm.clicks),
                (ctrl.exposures, arm.exposures),
                config,
                _previous_p(previous, arm.name, "ctr"),
            )
        )
        comparisons.append(
            _proportion_comparison(
                "conversion_rate",
                ctrl,
                arm,
                (ctrl.conversions, arm.conversions),
                (ctrl.users, arm.users),
                config,
                _previous_p(previous, arm.name, "conversion_rate"),
            )
        )
        comparisons.append(
            _revenue_comparison(
                ctrl, arm, config, _previous_p(previous, arm.name, "revenue_per_user")
            )
        )
    return ExperimentReport(
        experiment_id=experiment_id,
        control=control,
        alpha=config.alpha,
        arms=[arm_metrics(a, 1.0 - config.alpha) for a in arms],
        comparisons=comparisons,
        srm=srm_check({a.name: a.users for a in arms}, weights, config.srm_threshold),
    )
