"""Offline evaluation: a temporal per-user split and top-k ranking metrics.

The protocol (what `relevo evaluate` runs):

* **Split.** Each user's interactions are sorted by time; the last
  ``test_fraction`` (20%) of them go to test, the rest to train. The test size
  is ``round(test_fraction * n)`` (halves round up), at least 1 and at most
  ``n - 1``, so every user with at least 2 interactions keeps at least one in
  each part. Users with fewer than 2 interactions stay entirely in train: they
  help the models learn item structure but cannot be evaluated.
* **Ties.** Interactions with equal timestamps keep their input order (the
  order the event log appended them), so the split is deterministic and needs
  no arbitrary key such as the item id, which a model could otherwise exploit.
  Ties can therefore straddle the cut; the split is by position, not by time.
* **Per user, not per date.** Other users' training interactions may be later
  than this user's test part; every model sees the same data, so the
  comparison stays fair (the usual per-user protocol).
* **Relevance.** A user's relevant set is the distinct test items the user did
  not already touch in train: recommendations exclude seen training items, so
  re-consumption could never be hit and would only add noise. Users whose
  relevant set is empty are left out of the averages.
* **Metrics**, averaged over evaluated users, binary relevance:
  ``recall@k = hits / min(k, |relevant|)`` (the normalised recall of Liang et
  al. 2018, so a perfect list scores 1 even when a user has more than k test
  items); ``ndcg@k`` with ``1/log2(rank + 1)`` gains and the ideal list of
  ``min(k, |relevant|)`` hits; ``hr@k`` = share of users with at least one hit;
  ``coverage@k`` = share of the catalog appearing in at least one top-k list.

Hyper-parameters are never chosen on the test part: `validation_split`
carves a second temporal split out of train for that (see `tuning`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from relevo.models.base import Recommender
from relevo.models.interactions import IntArray, Interactions

DEFAULT_KS: tuple[int, ...] = (10, 20)


@dataclass(frozen=True)
class Split:
    """A train part and a test part of one dataset, in the same index space."""

    train: Interactions
    test: Interactions
    test_fraction: float

    def relevant(self) -> sp.csr_matrix:
        """Binary user x item matrix of test items the user did not touch in train."""
        test = self.test.to_csr(binary=True)
        train = self.train.to_csr(binary=True)
        rel = test - test.multiply(train)
        rel.eliminate_zeros()
        return sp.csr_matrix(rel)

    def evaluated_users(self) -> IntArray:
        """Users with at least one relevant test item, in index order."""
        rel = self.relevant()
        return np.flatnonzero(np.diff(rel.indptr) > 0).astype(np.int64)


def temporal_split(data: Interactions, test_fraction: float = 0.2) -> Split:
    """Last `test_fraction` of each user's interactions (by time) to test.

    >>> d = Interactions.from_records(
    ...     [{"user_id": "u", "item_id": str(i), "timestamp": 10 - i} for i in range(5)]
    ...     + [{"user_id": "lonely", "item_id": "0", "timestamp": 1}]
    ... )
    >>> s = temporal_split(d, 0.4)
    >>> sorted(s.test.item_ids[s.test.items].tolist()), len(s.train)
    (['0', '1'], 4)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    order = data.time_order()
    users_sorted = data.users[order]
    counts = np.bincount(users_sorted, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(order)) - starts[users_sorted]
    n_test = np.floor(counts * test_fraction + 0.5).astype(np.int64)
    n_test = np.clip(n_test, 1, np.maximum(counts - 1, 1))
    n_test[counts < 2] = 0
    is_test_sorted = position >= (counts - n_test)[users_sorted]
    is_test = np.zeros(len(data), dtype=bool)
    is_test[order] = is_test_sorted
    return Split(
        train=data.subset(~is_test), test=data.subset(is_test), test_fraction=test_fraction
    )


def validation_split(train: Interactions, test_fraction: float = 0.2) -> Split:
    """The same temporal cut applied inside the training period.

    Used to choose hyper-parameters and to make labels for the hybrid's ranker
    without ever looking at the test period.
    """
    return temporal_split(train, test_fraction)


def ranking_metrics(
    recommended: IntArray,
    relevant: sp.csr_matrix,
    users: IntArray,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    n_items: int | None = None,
) -> dict[str, float]:
    """Recall, NDCG and HR at each k, plus catalog coverage, averaged over `users`.

    `recommended[j]` is the ranked list (item indices, -1 = empty slot) for
    ``users[j]``; `relevant` is the binary user x item truth.

    >>> rel = sp.csr_matrix(np.array([[1, 0, 1, 0]]))
    >>> m = ranking_metrics(np.array([[2, 1]]), rel, np.array([0]), ks=[2], n_items=4)
    >>> m["recall@2"], round(m["ndcg@2"], 4), m["hr@2"], m["coverage@2"]
    (0.5, 0.6131, 1.0, 0.5)
    """
    rel = sp.csr_matrix(relevant)
    n_items = rel.shape[1] if n_items is None else n_items
    if len(users) == 0:
        return {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg", "hr", "coverage")}
    max_k = max(ks)
    recs = recommended[:, :max_k]
    hits = _hit_matrix(recs, rel, users)
    n_rel = np.diff(rel.indptr)[users]
    discounts = 1.0 / np.log2(np.arange(2, max_k + 2))
    out: dict[str, float] = {}
    for k in ks:
        h = hits[:, :k]
        n_hits = h.sum(axis=1)
        ideal_len = np.minimum(n_rel, k)
        idcg = np.cumsum(discounts[:k])[np.maximum(ideal_len, 1) - 1]
        dcg = (h * discounts[:k]).sum(axis=1)
        out[f"recall@{k}"] = float(np.mean(n_hits / np.maximum(ideal_len, 1)))
        out[f"ndcg@{k}"] = float(np.mean(dcg / idcg))
        out[f"hr@{k}"] = float(np.mean(n_hits > 0))
        listed = recs[:, :k]
        out[f"coverage@{k}"] = float(len(np.unique(listed[listed >= 0])) / max(n_items, 1))
    return out


def evaluate_recommender(
    model: Recommender,
    split: Split,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Fit-free scoring of an already fitted `model` on `split`'s test part."""
    users = split.evaluated_users()
    recs, _ = model.recommend_indices(users, max(ks), exclude_seen=True)
    return ranking_metrics(recs, split.relevant(), users, ks, n_items=split.train.n_items)


def _hit_matrix(recs: IntArray, rel: sp.csr_matrix, users: IntArray) -> npt.NDArray[np.float64]:
    """1.0 where ``recs[j, r]`` is a relevant item of ``users[j]``."""
    rows = rel[users]
    safe = np.where(recs >= 0, recs, 0)
    row_idx = np.repeat(np.arange(len(users)), recs.shape[1]).reshape(recs.shape)
    vals = np.asarray(rows[row_idx.ravel(), safe.ravel()]).reshape(recs.shape)
    return np.where(recs >= 0, vals, 0.0).astype(np.float64)


# ---------------------------------------------------------------------------- the experiment


class ProgressHook(Protocol):
    """Told about each long step of `run_evaluation` (the CLI draws a progress bar)."""

    def __call__(self, step: str, done: int, total: int) -> None: ...


@dataclass
class ModelResult:
    """One model's line in a report."""

    name: str
    role: str
    params: dict[str, Any]
    metrics: dict[str, float]
    train_seconds: float
    tune_seconds: float
    validation_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: round(v, 6) for k, v in self.metrics.items()}
        out["train_seconds"] = round(self.train_seconds, 3)
        out["tune_seconds"] = round(self.tune_seconds, 3)
        out["role"] = self.role
        if self.validation_score is not None and math.isfinite(self.validation_score):
            out["validation_score"] = round(self.validation_score, 6)
        out["params"] = self.params
        return out


@dataclass
class EvaluationReport:
    """What `relevo evaluate` prints: how the run was done, then one entry per model."""

    protocol: dict[str, Any]
    results: list[ModelResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "models": {r.name: r.to_dict() for r in self.results},
        }


def run_evaluation(
    data: Interactions,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    models: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    dataset: str = "",
    progress: ProgressHook | None = None,
) -> EvaluationReport:
    """Split `data` by time, tune and train every model on the same split, score each.

    Baselines are tuned with `tuning.tune` on `validation_split(train)`; the
    hybrid tunes its own sources on the same kind of split inside `fit`. The
    test part is touched only by the final scoring.
    """
    # Imported here because the catalog's models import this module (split, metrics).
    from relevo.models.catalog import CATALOG, DEFAULT_MODEL
    from relevo.models.tuning import tune

    ks = sorted({int(k) for k in ks} | {10})
    tune_k = 20 if 20 in ks else max(ks)
    tune_metric = f"ndcg@{tune_k}"
    names = list(CATALOG) if models is None else list(models)
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {sorted(CATALOG)}")
    split = temporal_split(data, test_fraction)
    validation = validation_split(split.train, validation_fraction)
    users = split.evaluated_users()
    relevant = split.relevant()
    report = EvaluationReport(
        protocol=_protocol(data, split, users, ks, tune_metric, dataset, validation_fraction)
    )
    total = len(names)
    for done, name in enumerate(names):
        spec = CATALOG[name]
        if progress is not None:
            progress(f"{name}: tuning and training", done, total)
        started = time.perf_counter()
        params = dict(spec.params)
        validation_score: float | None = None
        if spec.grid:
            tuned = tune(
                spec.cls, spec.grid, validation, metric=tune_metric, base_params=spec.params
            )
            params, validation_score = tuned.best_params, tuned.best_score
        tune_seconds = time.perf_counter() - started
        started = time.perf_counter()
        model = spec.build(**params).fit(split.train)
        train_seconds = time.perf_counter() - started
        recs, _ = model.recommend_indices(users, max(ks))
        metrics = ranking_metrics(recs, relevant, users, ks, n_items=data.n_items)
        report.results.append(
            ModelResult(
                name=name,
                role=spec.role,
                params=model.params(),
                metrics=metrics,
                train_seconds=train_seconds,
                tune_seconds=tune_seconds,
                validation_score=validation_score,
            )
        )
    if progress is not None:
        progress("done", total, total)
    report.protocol["comparison"] = _comparison(report, tune_metric, DEFAULT_MODEL)
    return report


def _protocol(
    data: Interactions,
    split: Split,
    users: IntArray,
    ks: Sequence[int],
    tune_metric: str,
    dataset: str,
    validation_fraction: float,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": len(data),
        "split": (
            f"temporal per user: the last {split.test_fraction:.0%} of each user's interactions "
            "(sorted by time, ties in input order) go to test; users with fewer than 2 "
            "interactions stay in train and are not evaluated"
        ),
        "test_fraction": split.test_fraction,
        "train_interactions": len(split.train),
        "test_interactions": len(split.test),
        "evaluated_users": len(users),
        "relevance": "distinct test items the user did not interact with in train",
        "exclude_seen": True,
        "ks": list(ks),
        "metrics": {
            "recall@k": "hits in top k / min(k, |relevant|)",
            "ndcg@k": "binary-gain DCG@k / ideal DCG@k, averaged over evaluated users",
            "hr@k": "share of evaluated users with at least one hit in top k",
            "coverage@k": "share of all items appearing in at least one user's top k",
        },
        "tuning": (
            f"grid search on {tune_metric} over a temporal validation split of the training "
            f"period (last {validation_fraction:.0%} of each user's training interactions); "
            "the test part is never used for any choice"
        ),
        "tuning_metric": tune_metric,
        "train_seconds": "final fit on the whole training part (hybrid: includes its own tuning)",
    }


def _comparison(report: EvaluationReport, metric: str, relevo_name: str) -> dict[str, Any]:
    """relevo's default recommender against the best baseline, on the tuning metric."""
    baselines = [r for r in report.results if r.role == "baseline"]
    relevo = next((r for r in report.results if r.name == relevo_name), None)
    if not baselines or relevo is None:
        return {}
    best = max(baselines, key=lambda r: r.metrics[metric])
    ratio = relevo.metrics[metric] / best.metrics[metric] if best.metrics[metric] > 0 else None
    return {
        "metric": metric,
        "best_baseline": best.name,
        "best_baseline_value": round(best.metrics[metric], 6),
        relevo_name: round(relevo.metrics[metric], 6),
        "ratio": None if ratio is None else round(ratio, 4),
    }
