"""Drift: references, KS / chi-square / PSI per window, statuses, alert-once monitor."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from relevo.monitoring.drift import (
    MISSING,
    OTHER,
    PSI_EPSILON,
    CategoricalReference,
    DriftMonitor,
    DriftThresholds,
    MonitorState,
    NumericReference,
    ReferenceProfile,
    categorical_reference,
    classify,
    compare,
    drift_report,
    numeric_reference,
    psi,
    reference_profile,
)

WINDOW = 1_000
DEVICES = ["mobile", "desktop", "tablet"]
DEVICE_P = [0.60, 0.35, 0.05]


def training_profile(rng: np.random.Generator) -> ReferenceProfile:
    n = 20_000
    return reference_profile(
        {
            "price": rng.lognormal(3.0, 0.8, size=n),
            "score": rng.beta(2.0, 5.0, size=n),
            "device": rng.choice(DEVICES, p=DEVICE_P, size=n),
        }
    )


def live_window(
    rng: np.random.Generator, price_shift: float = 0.0, device_p: list[float] | None = None
) -> dict[str, np.ndarray]:
    return {
        "price": rng.lognormal(3.0 + price_shift, 0.8, size=WINDOW),
        "score": rng.beta(2.0, 5.0, size=WINDOW),
        "device": rng.choice(DEVICES, p=device_p or DEVICE_P, size=WINDOW),
    }


def test_profile_kinds_and_bounded_json_round_trip() -> None:
    profile = training_profile(np.random.default_rng(0))
    assert isinstance(profile.features["price"], NumericReference)
    assert isinstance(profile.features["device"], CategoricalReference)
    price = profile.features["price"]
    assert isinstance(price, NumericReference)
    assert len(price.summary) == 1000
    assert len(price.bin_edges) == 9
    assert sum(price.bin_shares) == pytest.approx(1.0)
    text = profile.model_dump_json()
    assert len(text) < 100_000
    assert ReferenceProfile.model_validate_json(text) == profile


def test_unshifted_stream_stays_ok() -> None:
    rng = np.random.default_rng(3)
    profile = training_profile(rng)
    monitor = DriftMonitor(profile)
    low_p = {name: 0 for name in profile.features}
    not_ok = {name: 0 for name in profile.features}
    psis: list[float] = []
    for _ in range(50):
        update = monitor.update(live_window(rng))
        assert update.alerts == []
        for r in update.report.features:
            assert r.p_value is not None
            low_p[r.feature] += r.p_value < 0.01
            not_ok[r.feature] += r.status != "ok"
            assert r.status != "drift"
            if r.feature == "price":
                psis.append(r.psi)
    print(f"50 unshifted windows: p < 0.01 per feature {low_p}, non-ok statuses {not_ok}")
    assert all(v <= 3 for v in low_p.values())
    assert all(v <= 3 for v in not_ok.values())
    # The docstring's claim: under no shift E[PSI] ~ (B - 1) (1/n + 1/N_ref).
    expected = 9 * (1 / WINDOW + 1 / 20_000)
    assert np.mean(psis) == pytest.approx(expected, rel=0.25)


def test_ks_from_the_bounded_summary_matches_ks_on_the_full_reference() -> None:
    rng = np.random.default_rng(8)
    full = rng.lognormal(3.0, 0.8, size=20_000)
    ref = numeric_reference(full)
    assert len(ref.summary) == 1000
    summary_p, full_p = [], []
    for _ in range(300):
        window = rng.lognormal(3.0, 0.8, size=WINDOW)
        summary_p.append(compare(ref, window).p_value)
        full_p.append(sps.ks_2samp(full, window, method="asymp").pvalue)
    diff = np.abs(np.array(summary_p) - np.array(full_p))
    assert diff.max() < 0.03
    # Calibrated, not merely conservative: about 5% of null windows at p < 0.05.
    rate = float(np.mean(np.array(summary_p) < 0.05))
    assert 0.02 <= rate <= 0.09, rate


def test_shift_moves_feature_to_drift_and_alerts_once_per_episode() -> None:
    rng = np.random.default_rng(7)
    monitor = DriftMonitor(training_profile(rng))
    plan = [0.0] * 8 + [0.7] * 10 + [0.0] * 5 + [0.7] * 5
    statuses: list[str] = []
    alerts: list[tuple[int, str]] = []
    for i, shift in enumerate(plan):
        update = monitor.update(live_window(rng, price_shift=shift))
        price = next(r for r in update.report.features if r.feature == "price")
        statuses.append(price.status)
        alerts.extend((i, a.feature) for a in update.alerts)
        if shift:
            assert update.report.status == "drift"
            assert update.report.drifting == ["price"]
    assert statuses[:8] == ["ok"] * 8
    assert statuses[8:18] == ["drift"] * 10
    assert statuses[18] == "ok"
    # Once when entering drift, again only after it came back to ok.
    assert alerts == [(8, "price"), (23, "price")]
    assert monitor.state.windows == len(plan)


def test_hovering_between_warn_and_drift_alerts_once() -> None:
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(training_profile(rng))
    seen = []
    n_alerts = 0
    for shift in [0.0, 0.7, 0.2, 0.7, 0.2, 0.7]:
        update = monitor.update(live_window(rng, price_shift=shift))
        seen.append(monitor.state.features["price"].status)
        n_alerts += len(update.alerts)
    assert seen == ["ok", "drift", "warn", "drift", "warn", "drift"]
    assert n_alerts == 1


def test_monitor_resumes_from_persisted_state() -> None:
    rng = np.random.default_rng(5)
    profile = training_profile(rng)
    first = DriftMonitor(profile)
    assert len(first.update(live_window(rng, price_shift=1.0)).alerts) == 1
    saved = json.loads(first.state.model_dump_json())
    second = DriftMonitor(profile, state=MonitorState.model_validate(saved))
    assert second.update(live_window(rng, price_shift=1.0)).alerts == []
    assert second.state.windows == 2


def test_categorical_drift_and_unseen_categories() -> None:
    rng = np.random.default_rng(11)
    ref = categorical_reference(rng.choice(DEVICES, p=DEVICE_P, size=20_000).tolist())
    assert compare(ref, rng.choice(DEVICES, p=DEVICE_P, size=WINDOW)).status == "ok"
    shifted = compare(ref, rng.choice(DEVICES, p=[0.3, 0.6, 0.1], size=WINDOW))
    assert shifted.status == "drift"
    assert shifted.test == "chi2"
    # A category the reference never saw (a new app) lands in __other__.
    new = rng.choice([*DEVICES, "smart-tv"], p=[0.4, 0.25, 0.05, 0.3], size=WINDOW)
    assert compare(ref, new).status == "drift"
    # A broken pipeline sending nulls.
    nulls = compare(ref, [None] * 500 + ["mobile"] * 500)
    assert (nulls.status, nulls.missing_share) == ("drift", 0.5)
    rng2 = np.random.default_rng(12)
    p_values = [
        compare(ref, rng2.choice(DEVICES, p=DEVICE_P, size=WINDOW)).p_value for _ in range(50)
    ]
    false_alarms = sum(p is not None and p < 0.01 for p in p_values)
    assert false_alarms <= 3


def test_categorical_reference_is_bounded() -> None:
    values = [f"c{i % 200}" for i in range(10_000)] + [None] * 10
    ref = categorical_reference(values, max_categories=20)
    assert len(ref.counts) == 22
    assert sum(ref.counts.values()) == 10_010
    assert ref.counts[MISSING] == 10  # rare, but never pooled into __other__
    assert ref.counts[OTHER] == 10_000 - 20 * 50


def test_missing_numeric_values() -> None:
    rng = np.random.default_rng(1)
    ref = numeric_reference(rng.normal(size=5_000))
    broken = compare(ref, [float("nan")] * 300)
    assert (broken.p_value, broken.statistic) == (None, None)
    assert broken.missing_share == 1.0
    assert broken.status == "drift"  # no test can run: PSI alone decides
    some = compare(ref, [*rng.normal(size=900).tolist(), *([None] * 100)])
    assert some.missing_share == pytest.approx(0.1)
    assert some.status == "warn"  # 10% missing where there were none: PSI ~ 0.6 but KS fine
    with pytest.raises(ValueError, match="empty window"):
        compare(ref, [])


def test_reference_against_its_own_data_has_zero_psi() -> None:
    data = np.random.default_rng(2).exponential(size=3_000)
    ref = numeric_reference(data)
    same = compare(ref, data)
    assert same.psi == pytest.approx(0.0, abs=1e-12)
    assert same.status == "ok"


def brute_force_psi(ref_values: list[float], window: list[float], n_bins: int) -> float:
    """PSI written out the long way, from the module docstring's definition."""
    finite = sorted(v for v in ref_values if math.isfinite(v))
    edges = sorted(set(np.quantile(finite, [k / n_bins for k in range(1, n_bins)]).tolist()))

    def shares(values: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 2)
        for v in values:
            if not math.isfinite(v):
                counts[-1] += 1
                continue
            i = 0
            while i < len(edges) and v > edges[i]:  # bins are (e[i-1], e[i]]
                i += 1
            counts[i] += 1
        return [c / len(values) for c in counts]

    total = 0.0
    for e, a in zip(shares(ref_values), shares(window), strict=True):
        e, a = max(e, PSI_EPSILON), max(a, PSI_EPSILON)
        total += (a - e) * math.log(a / e)
    return total


value = st.one_of(
    st.floats(-100, 100, allow_nan=False),
    st.sampled_from([0.0, 1.0, float("nan"), float("inf")]),
)


@settings(max_examples=100, deadline=None)
@given(
    ref_values=st.lists(value, min_size=1, max_size=200).filter(
        lambda vs: any(math.isfinite(v) for v in vs)
    ),
    window=st.lists(value, min_size=1, max_size=200),
    n_bins=st.integers(2, 12),
)
def test_psi_matches_brute_force(ref_values: list[float], window: list[float], n_bins: int) -> None:
    ref = numeric_reference(ref_values, n_bins=n_bins)
    got = compare(ref, window)
    assert got.psi >= 0.0
    assert got.psi == pytest.approx(brute_force_psi(ref_values, window, n_bins), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    ref_values=st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=100),
    window=st.lists(st.sampled_from(["a", "b", "e", None]), min_size=1, max_size=100),
)
def test_categorical_psi_matches_brute_force(
    ref_values: list[str | None], window: list[str | None]
) -> None:
    ref = categorical_reference(ref_values, max_categories=2)
    kept = {k for k in ref.counts if k != OTHER}

    def key(v: str | None) -> str:
        k = MISSING if v is None else v
        return k if k in kept or k == MISSING else OTHER

    cats = sorted({key(v) for v in ref_values} | {key(v) for v in window})
    expected = [sum(key(v) == c for v in ref_values) / len(ref_values) for c in cats]
    actual = [sum(key(v) == c for v in window) / len(window) for c in cats]
    assert compare(ref, window).psi == pytest.approx(psi(expected, actual), abs=1e-9)


def test_classify_rules() -> None:
    t = DriftThresholds()
    assert classify(0.5, 0.0, t) == "ok"
    assert classify(0.005, 0.0, t) == "warn"
    assert classify(0.5, 0.12, t) == "warn"
    assert classify(0.5, 0.3, t) == "warn"  # large but unconvincing: small window
    assert classify(1e-12, 0.05, t) == "warn"  # convincing but small: large window
    assert classify(1e-4, 0.3, t) == "drift"
    assert classify(None, 0.3, t) == "drift"
    assert classify(None, 0.05, t) == "ok"


def test_report_lists_unevaluated_features_and_ignores_unknown_columns() -> None:
    rng = np.random.default_rng(4)
    profile = training_profile(rng)
    window = live_window(rng)
    del window["device"]
    report = drift_report(profile, {**window, "user_id": np.arange(WINDOW), "score": []})
    assert [r.feature for r in report.features] == ["price"]
    assert report.not_evaluated == ["score", "device"]
    payload = json.loads(report.model_dump_json())
    assert payload["status"] == "ok"


def test_invalid_references() -> None:
    with pytest.raises(ValueError, match="at least one"):
        numeric_reference([])
    with pytest.raises(ValueError, match="at least one"):
        categorical_reference([])
    with pytest.raises(ValueError, match="at least 2"):
        numeric_reference([1.0], n_bins=1)
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])
