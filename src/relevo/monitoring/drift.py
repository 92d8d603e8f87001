"""Drift of model inputs and scores: a reference captured at training time,
windows of live values compared against it, and a monitor that alerts once.

Why: a model is only as good as the match between the data it was trained on
and the data it now sees. A feature pipeline that breaks (all NaN, a unit
change, a renamed category) or a shift in traffic shows up here before it shows
up in the KPIs.

Reference (bounded, JSON-serializable)
--------------------------------------

- **Numeric** (:func:`numeric_reference`): non-finite values (NaN, inf, None)
  count as *missing*. The finite values are kept as a *quantile summary* of at
  most ``summary_size`` points (the quantiles at ``(i + 0.5) / m``; all the
  values themselves when there are fewer), plus the PSI bins: interior edges at
  the reference deciles (``n_bins`` quantile bins; duplicate edges from point
  masses are merged), bins closed on the right, ``(e[i-1], e[i]]``, and a
  separate *missing* bin. The shares of each bin are measured on all the
  reference values, so the reference against itself has PSI 0.
- **Categorical** (:func:`categorical_reference`): counts of the
  ``max_categories`` most frequent values; the rest are pooled in ``__other__``.
  None is the category ``__missing__``, always kept apart (a pipeline that
  starts sending nulls must not hide in ``__other__``). Live values never seen
  in the top categories fall into ``__other__``.

Comparison of a window
----------------------

- Numeric: the two-sample Kolmogorov-Smirnov test of the window's finite
  values against the reference's. The statistic ``D`` is measured against the
  quantile summary (``scipy.stats.ks_2samp``; the summary's ECDF is within
  about ``1 / summary_size`` of the reference's), and the p-value is the
  two-sample one for the *real* sizes: ``scipy.stats.kstwo.sf(D, round(N * n /
  (N + n)))`` with ``N`` finite reference values and ``n`` window values, as
  ``ks_2samp`` computes it asymptotically. (Treating the summary as a sample
  of its own size would make the test far too conservative, since a quantile
  summary carries no sampling noise.) When the reference had no more values
  than the summary holds, the summary *is* the reference and ``ks_2samp``'s
  own p-value is used. Many ties (discrete features) make KS conservative.
  KS sees only finite values: a rise in the missing share shows in
  ``missing_share`` and in PSI (so it reaches ``warn``), and a window of only
  missing values reaches ``drift`` through PSI alone (see below).
- Categorical: the chi-square test of homogeneity of the 2 x C table of
  reference and window counts (``scipy.stats.chi2_contingency``, no continuity
  correction), over the categories seen in either.
- PSI, the population stability index, over the bins above (the missing bin
  included) or the categories: ``sum((a - e) * ln(a / e))`` with ``e`` the
  reference and ``a`` the window shares, each floored at ``PSI_EPSILON =
  1e-4`` so an empty bin counts as rare, not impossible (every term stays
  finite and non-negative).

Status, and why these thresholds
--------------------------------

- ``drift`` when PSI >= 0.25 **and** p < 0.001 (or no test could run, e.g. a
  window of only missing values: then PSI alone decides).
- ``warn`` when PSI >= 0.1 **or** p < 0.01.
- ``ok`` otherwise.

PSI's bands 0.1 / 0.25 are the conventional "moderate" / "significant shift"
of credit-risk practice, and PSI measures size, not evidence. The p-value
measures evidence, not size: on a large window a negligible shift is highly
significant. So ``drift`` requires both (a shift that is large *and* not noise),
which keeps alerts actionable, and ``warn`` flags either early. The p-value
cut-offs are strict because a monitor runs many tests (features x windows):
at 0.001, 50 features evaluated every hour raise a false ``drift`` test about
once a day at most, and the PSI condition removes most of those. Under no
shift PSI is roughly chi-square: its expected value is about ``(B - 1) / n``
for ``B`` bins and a window of ``n`` values (0.009 for 10 bins and 1,000
values), so windows of at least a few hundred values keep ``warn`` quiet
where nothing changed; below ~100 values PSI noise alone reaches 0.1.

>>> rng = np.random.default_rng(0)
>>> ref = numeric_reference(rng.normal(size=10_000))
>>> compare(ref, rng.normal(size=1_000)).status
'ok'
>>> shifted = compare(ref, rng.normal(loc=1.0, size=1_000))
>>> shifted.status, shifted.psi > 0.25
('drift', True)
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as sps

__all__ = [
    "MISSING",
    "OTHER",
    "PSI_EPSILON",
    "CategoricalReference",
    "DriftAlert",
    "DriftMonitor",
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "FeatureMonitorState",
    "MonitorState",
    "MonitorUpdate",
    "NumericReference",
    "Reference",
    "ReferenceProfile",
    "Status",
    "Values",
    "categorical_reference",
    "classify",
    "compare",
    "drift_report",
    "numeric_reference",
    "psi",
    "reference_profile",
]

Status = Literal["ok", "warn", "drift"]
MISSING = "__missing__"
OTHER = "__other__"
PSI_EPSILON = 1e-4

Values = Sequence[object] | npt.NDArray[np.generic]
"""A window or reference column: a sequence or a numpy array."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_SEVERITY: dict[Status, int] = {"ok": 0, "warn": 1, "drift": 2}


class NumericReference(BaseModel):
    """Bounded reference of a numeric feature (see the module docstring)."""

    model_config = _FROZEN

    kind: Literal["numeric"] = "numeric"
    count: int = Field(ge=1)
    missing: int = Field(ge=0)
    summary: tuple[float, ...]
    bin_edges: tuple[float, ...]
    bin_shares: tuple[float, ...]
    """One share per value bin (``len(bin_edges) + 1``), then the missing bin."""


class CategoricalReference(BaseModel):
    """Bounded reference of a categorical feature: top categories' counts."""

    model_config = _FROZEN

    kind: Literal["categorical"] = "categorical"
    counts: dict[str, int]


Reference = Annotated[NumericReference | CategoricalReference, Field(discriminator="kind")]


class ReferenceProfile(BaseModel):
    """The references of all monitored features (inputs and scores) of a model."""

    model_config = _FROZEN

    features: dict[str, Reference]


def numeric_reference(
    values: Values, n_bins: int = 10, summary_size: int = 1000
) -> NumericReference:
    """Capture the reference of a numeric feature.

    >>> ref = numeric_reference([1.0, 2.0, 2.0, 3.0, float("nan")], n_bins=2)
    >>> ref.bin_edges, ref.bin_shares
    ((2.0,), (0.6, 0.2, 0.2))
    """
    if n_bins < 2 or summary_size < 2:
        raise ValueError("n_bins and summary_size must be at least 2")
    x = _as_float_array(values)
    finite = np.sort(x[np.isfinite(x)])
    if x.size == 0:
        raise ValueError("a reference needs at least one value")
    if finite.size > summary_size:
        summary = np.quantile(finite, (np.arange(summary_size) + 0.5) / summary_size)
    else:
        summary = finite
    edges = (
        np.unique(np.quantile(finite, np.arange(1, n_bins) / n_bins))
        if finite.size
        else np.empty(0)
    )
    shares = _numeric_bin_counts(x, edges) / x.size
    return NumericReference(
        count=int(x.size),
        missing=int(x.size - finite.size),
        summary=tuple(float(v) for v in summary),
        bin_edges=tuple(float(e) for e in edges),
        bin_shares=tuple(float(s) for s in shares),
    )


def categorical_reference(
    values: Iterable[str | None], max_categories: int = 50
) -> CategoricalReference:
    """Capture the reference of a categorical feature.

    >>> categorical_reference(["a", "a", "b", "c", None], max_categories=2).counts
    {'a': 2, 'b': 1, '__missing__': 1, '__other__': 1}
    """
    if max_categories < 1:
        raise ValueError("max_categories must be at least 1")
    counts = Counter(MISSING if v is None else v for v in values)
    if not counts:
        raise ValueError("a reference needs at least one value")
    missing = counts.pop(MISSING, 0)
    # Most frequent first; ties by name so the capture is deterministic.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[:max_categories])
    rest = sum(n for _, n in ranked[max_categories:])
    if missing:
        kept[MISSING] = missing
    if rest:
        kept[OTHER] = kept.get(OTHER, 0) + rest
    return CategoricalReference(counts=kept)


def reference_profile(
    columns: Mapping[str, Values],
    categorical: Iterable[str] = (),
    n_bins: int = 10,
    summary_size: int = 1000,
    max_categories: int = 50,
) -> ReferenceProfile:
    """Capture references for several features (e.g. a training frame's columns).

    Columns listed in ``categorical``, and columns that are not numeric
    (numpy dtype kind other than int, unsigned or float), are categorical.
    """
    cat = set(categorical)
    features: dict[str, Reference] = {}
    for name, col in columns.items():
        arr = np.asarray(col)
        if name not in cat and arr.dtype.kind in "iuf":
            features[name] = numeric_reference(arr, n_bins, summary_size)
        else:
            features[name] = categorical_reference(
                (None if v is None else str(v) for v in arr.tolist()), max_categories
            )
    return ReferenceProfile(features=features)


def _as_float_array(values: Values) -> npt.NDArray[np.float64]:
    # None becomes NaN, so it counts as missing like NaN and inf.
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(float, copy=False).ravel()
    items = np.asarray(values, dtype=object).ravel().tolist()
    return np.array([np.nan if v is None else v for v in items], dtype=float)


def _numeric_bin_counts(
    x: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    finite = x[np.isfinite(x)]
    # side="left": a value equal to an edge belongs to the bin it closes.
    idx = np.searchsorted(edges, finite, side="left")
    counts = np.bincount(idx, minlength=edges.size + 1).astype(float)
    return np.append(counts, float(x.size - finite.size))


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index between two share vectors over the same bins.

    >>> round(psi([0.5, 0.5], [0.7, 0.3]), 4)
    0.1695
    """
    e = np.maximum(np.asarray(expected, dtype=float), epsilon)
    a = np.maximum(np.asarray(actual, dtype=float), epsilon)
    if e.shape != a.shape:
        raise ValueError("expected and actual must have the same bins")
    return float(np.sum((a - e) * np.log(a / e)))


class DriftThresholds(BaseModel):
    """Cut-offs of :func:`classify`; see the module docstring for the reasons."""

    model_config = _FROZEN

    warn_p: float = Field(default=0.01, gt=0.0, lt=1.0)
    warn_psi: float = Field(default=0.1, gt=0.0)
    drift_p: float = Field(default=0.001, gt=0.0, lt=1.0)
    drift_psi: float = Field(default=0.25, gt=0.0)


def classify(p_value: float | None, psi_value: float, thresholds: DriftThresholds) -> Status:
    """Status from a test's p-value (None if no test could run) and the PSI.

    >>> t = DriftThresholds()
    >>> classify(1e-9, 0.05, t), classify(0.5, 0.3, t), classify(1e-4, 0.3, t)
    ('warn', 'warn', 'drift')
    """
    evidence = p_value is None or p_value < thresholds.drift_p
    if psi_value >= thresholds.drift_psi and evidence:
        return "drift"
    if psi_value >= thresholds.warn_psi or (p_value is not None and p_value < thresholds.warn_p):
        return "warn"
    return "ok"


class FeatureDrift(BaseModel):
    """One feature's comparison of a window against its reference."""

    model_config = _FROZEN

    feature: str
    kind: Literal["numeric", "categorical"]
    n: int
    missing_share: float
    test: Literal["ks", "chi2"]
    statistic: float | None
    p_value: float | None
    psi: float
    status: Status


def _compare_numeric(
    name: str, ref: NumericReference, values: Values, thresholds: DriftThresholds
) -> FeatureDrift:
    x = _as_float_array(values)
    if x.size == 0:
        raise ValueError(f"empty window for feature {name!r}")
    finite = x[np.isfinite(x)]
    shares = _numeric_bin_counts(x, np.asarray(ref.bin_edges, dtype=float)) / x.size
    psi_value = psi(ref.bin_shares, shares)
    stat: float | None = None
    p: float | None = None
    n_ref = ref.count - ref.missing
    summary = np.asarray(ref.summary, dtype=float)
    if finite.size and n_ref > summary.size:
        # The statistic is the same whatever the method; the p-value is ours.
        stat = float(sps.ks_2samp(summary, finite, method="asymp").statistic)
        effective_n = round(n_ref * finite.size / (n_ref + finite.size))
        p = float(sps.kstwo.sf(stat, max(1, effective_n)))
    elif finite.size and n_ref:
        with warnings.catch_warnings():
            # With heavy ties scipy's exact method may not converge; it then
            # says so and uses the asymptotic p-value, which is what we want.
            warnings.filterwarnings(
                "ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning
            )
            res = sps.ks_2samp(summary, finite)
        stat, p = float(res.statistic), float(res.pvalue)
    return FeatureDrift(
        feature=name,
        kind="numeric",
        n=int(x.size),
        missing_share=float(1.0 - finite.size / x.size),
        test="ks",
        statistic=stat,
        p_value=p,
        psi=psi_value,
        status=classify(p, psi_value, thresholds),
    )


def _compare_categorical(
    name: str, ref: CategoricalReference, values: Iterable[str | None], thresholds: DriftThresholds
) -> FeatureDrift:
    known = set(ref.counts) | {MISSING}
    window = Counter(
        key if key in known else OTHER for key in (MISSING if v is None else v for v in values)
    )
    n = sum(window.values())
    if n == 0:
        raise ValueError(f"empty window for feature {name!r}")
    keys = [k for k in (*ref.counts, MISSING, OTHER) if ref.counts.get(k, 0) or window.get(k, 0)]
    keys = list(dict.fromkeys(keys))  # MISSING and OTHER may be in ref.counts already
    ref_counts = np.array([ref.counts.get(k, 0) for k in keys], dtype=float)
    win_counts = np.array([window.get(k, 0) for k in keys], dtype=float)
    psi_value = psi(ref_counts / ref_counts.sum(), win_counts / n)
    if len(keys) < 2:
        stat, p = 0.0, 1.0  # one category on both sides: nothing can differ
    else:
        res = sps.chi2_contingency(np.vstack([ref_counts, win_counts]), correction=False)
        stat, p = float(res.statistic), float(res.pvalue)
    return FeatureDrift(
        feature=name,
        kind="categorical",
        n=n,
        missing_share=window.get(MISSING, 0) / n,
        test="chi2",
        statistic=stat,
        p_value=p,
        psi=psi_value,
        status=classify(p, psi_value, thresholds),
    )


def compare(
    reference: NumericReference | CategoricalReference,
    values: Values,
    thresholds: DriftThresholds | None = None,
    name: str = "feature",
) -> FeatureDrift:
    """Compare one window of values of a feature against its reference."""
    thresholds = thresholds or DriftThresholds()
    if isinstance(reference, NumericReference):
        return _compare_numeric(name, reference, values, thresholds)
    cats = (None if v is None else str(v) for v in np.asarray(values, dtype=object).tolist())
    return _compare_categorical(name, reference, cats, thresholds)


class DriftReport(BaseModel):
    """All features of one window; ``status`` is the worst feature's."""

    model_config = _FROZEN

    status: Status
    features: list[FeatureDrift]
    drifting: list[str]
    warning: list[str]
    not_evaluated: list[str]
    """Features of the profile with no values in this window."""


def drift_report(
    profile: ReferenceProfile,
    window: Mapping[str, Values],
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Compare a window (feature name -> values) against a reference profile.

    Columns of the window that the profile does not know are ignored.
    """
    thresholds = thresholds or DriftThresholds()
    results: list[FeatureDrift] = []
    skipped: list[str] = []
    for name, ref in profile.features.items():
        values = window.get(name)
        if values is None or len(values) == 0:
            skipped.append(name)
            continue
        results.append(compare(ref, values, thresholds, name))
    worst: Status = max((r.status for r in results), key=_SEVERITY.__getitem__, default="ok")
    return DriftReport(
        status=worst,
        features=results,
        drifting=[r.feature for r in results if r.status == "drift"],
        warning=[r.feature for r in results if r.status == "warn"],
        not_evaluated=skipped,
    )


class FeatureMonitorState(BaseModel):
    """Last status of a feature, and whether a new ``drift`` would alert."""

    model_config = _FROZEN

    status: Status = "ok"
    armed: bool = True


class MonitorState(BaseModel):
    """Serializable state of a :class:`DriftMonitor`."""

    model_config = _FROZEN

    windows: int = 0
    features: dict[str, FeatureMonitorState] = Field(default_factory=dict)


class DriftAlert(BaseModel):
    """Raised when a feature enters ``drift``."""

    model_config = _FROZEN

    feature: str
    window: int
    """Index of the window (0-based, in the monitor's lifetime) that raised it."""
    psi: float
    p_value: float | None
    statistic: float | None


class MonitorUpdate(BaseModel):
    """What one window produced: the full report and the new alerts."""

    model_config = _FROZEN

    report: DriftReport
    alerts: list[DriftAlert]


class DriftMonitor:
    """Compare successive windows and alert once per drift episode.

    A feature alerts when it enters ``drift`` while *armed*; that disarms it.
    It is re-armed only by an ``ok`` window, so a feature hovering between
    ``warn`` and ``drift`` raises one alert, not one per window. Features not
    evaluated in a window keep their state. The state is plain data: persist
    ``monitor.state`` and pass it back to resume.

    >>> rng = np.random.default_rng(1)
    >>> profile = ReferenceProfile(features={"x": numeric_reference(rng.normal(size=5000))})
    >>> monitor = DriftMonitor(profile)
    >>> [len(monitor.update({"x": rng.normal(loc=loc, size=500)}).alerts)
    ...  for loc in (0, 2, 2, 0, 2)]
    [0, 1, 0, 0, 1]
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        thresholds: DriftThresholds | None = None,
        state: MonitorState | None = None,
    ) -> None:
        self.profile = profile
        self.thresholds = thresholds or DriftThresholds()
        self._state = state or MonitorState()

    @property
    def state(self) -> MonitorState:
        """The current state, to persist."""
        return self._state

    def update(self, window: Mapping[str, Values]) -> MonitorUpdate:
        """Evaluate one window, update the per-feature state, return alerts."""
        report = drift_report(self.profile, window, self.thresholds)
        index = self._state.windows
        features = dict(self._state.features)
        alerts: list[DriftAlert] = []
        for r in report.features:
            prev = features.get(r.feature, FeatureMonitorState())
            armed = prev.armed
            if r.status == "drift" and armed:
                alerts.append(
                    DriftAlert(
                        feature=r.feature,
                        window=index,
                        psi=r.psi,
                        p_value=r.p_value,
                        statistic=r.statistic,
                    )
                )
                armed = False
            elif r.status == "ok":
                armed = True
            features[r.feature] = FeatureMonitorState(status=r.status, armed=armed)
        self._state = MonitorState(windows=index + 1, features=features)
        return MonitorUpdate(report=report, alerts=alerts)
