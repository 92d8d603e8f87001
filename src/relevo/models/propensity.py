"""Propensity: P(click) and P(convert) of showing a candidate to a user in a context.

Placements call `PropensityModel.score` to choose between items or content
variants. The model learns from *records* ``{user, candidate, context, label}``:

* `user`: the profile as it was just before the exposure, from the same feature
  code as serving (`ProfileReplay`, then `profile_features.user_vector` and the
  pair part of `pair_features`);
* `candidate`: ``{"id", "kind": "item" | "variant", "category", "price"}``;
* `context`: ``{"device", "country", ...}`` plus the hour and weekday of the exposure;
* `label`: 1 when the outcome followed the exposure.

Until placements log decisions (and their exposures), records come from the
interaction log (`records_from_log`): an *exposure* is an impression (or, for
conversions, also a view) of an item; it is labelled 1 when the same user clicked
(target ``click``: impressions only, a view usually *is* the click) or added to
cart / purchased (target ``convert``) that item within `HORIZON_MS` after it, or
when an outcome names the exposure's `decision_id`. Logged decisions become the
same records later, with no change to the model.

Per target: LightGBM (binary) on the first part of the training records in time,
calibrated on the rest (isotonic regression when there are enough calibration
rows, else Platt scaling: scikit-learn either way), and reported on a temporal
holdout with AUC, Brier score and log loss, raw and calibrated. Saved as JSON and
LightGBM text (no pickle).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from relevo.clock import to_datetime
from relevo.errors import InvalidInput
from relevo.events import profile_key
from relevo.features.profile import FeatureParams
from relevo.live.weights import event_items
from relevo.models.interactions import FloatArray
from relevo.models.profile_features import (
    PAIR_FEATURES,
    USER_FEATURES,
    ProfileReplay,
    pair_features,
)
from relevo.models.training_data import TrainingData

HORIZON_MS = 30 * 60_000
OUTCOMES: dict[str, frozenset[str]] = {
    "click": frozenset({"click"}),
    "convert": frozenset({"add_to_cart", "purchase"}),
}
EXPOSURES: dict[str, frozenset[str]] = {
    "click": frozenset({"impression"}),
    "convert": frozenset({"impression", "view"}),
}
CATEGORICAL = ("candidate_id", "candidate_category", "device", "country")
NUMERIC = (
    *(f"user_{name}" for name in USER_FEATURES),
    *(f"pair_{name}" for name in PAIR_FEATURES),
    "candidate_log_price",
    "candidate_is_variant",
    "hour",
    "weekday",
)
FEATURE_NAMES: tuple[str, ...] = NUMERIC + CATEGORICAL
MAX_LEVELS = 500
"""Most frequent values kept per categorical feature; the rest are "unknown" (missing)."""
MIN_RECORDS = 50
MAX_RECORDS = 200_000
"""Newest exposures used per target: bounds the profile replays (one render each)."""
ISOTONIC_MIN_ROWS = 1000
MODEL_FILE = "propensity.json"

LGB_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "seed": 42,
}


@dataclass(frozen=True)
class PropensityRecord:
    """One exposure: who saw what, where, and whether the outcome followed."""

    user: Mapping[str, Any] | None
    candidate: Mapping[str, Any]
    context: Mapping[str, Any]
    at_ms: int
    label: int


def records_from_log(
    data: TrainingData, params: FeatureParams, target: str, max_records: int = MAX_RECORDS
) -> list[PropensityRecord]:
    """Labelled exposures of `target` from the interaction log (the newest `max_records`)."""
    exposures, outcomes = EXPOSURES[target], OUTCOMES[target]
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in data.records:
        by_user[profile_key(record)].append(record)
    found: list[tuple[int, str, int, str]] = []  # (time, user, position, item)
    for user, events in by_user.items():
        for position, event in enumerate(events):
            if event["type"] in exposures:
                found += [(event["timestamp"], user, position, i) for i in event_items(event)]
    found.sort()
    found = found[-max_records:]
    replay = ProfileReplay(data.records, params)
    records: list[PropensityRecord] = []
    # Grouped by user, in time: each user's replay then runs forward once.
    for at, user, position, item in sorted(found, key=lambda entry: (entry[1], entry[0])):
        events = by_user[user]
        event = events[position]
        records.append(
            PropensityRecord(
                user=replay.profile_at(user, at - 1),
                candidate=_item_candidate(item, data, event),
                context=event.get("context") or {},
                at_ms=at,
                label=int(_followed(events, position, item, event.get("decision_id"), outcomes)),
            )
        )
    records.sort(key=lambda record: record.at_ms)
    return records


def _followed(
    events: Sequence[dict[str, Any]],
    position: int,
    item: str,
    decision_id: str | None,
    outcomes: frozenset[str],
) -> bool:
    """Did an outcome on `item` (or on the same decision) follow within the horizon?"""
    at = events[position]["timestamp"]
    for later in events[position + 1 :]:
        if later["timestamp"] > at + HORIZON_MS:
            return False
        if later["type"] in outcomes and (
            item in event_items(later)
            or (decision_id is not None and later.get("decision_id") == decision_id)
        ):
            return True
    return False


def _item_candidate(item: str, data: TrainingData, event: dict[str, Any]) -> dict[str, Any]:
    doc = data.catalog.get(item, {})
    return {
        "id": item,
        "kind": "item",
        "category": doc.get("category") or event.get("category"),
        "price": doc.get("price"),
    }


# ------------------------------------------------------------------------------- features
@dataclass
class Encoder:
    """Turns records into the feature matrix; categorical vocabularies are learned once."""

    vocabularies: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def fit(cls, records: Sequence[PropensityRecord]) -> Encoder:
        counts: dict[str, Counter[str]] = {name: Counter() for name in CATEGORICAL}
        for record in records:
            for name, value in _categorical(record).items():
                if value is not None:
                    counts[name][value] += 1
        return cls(
            {
                name: {value: code for code, (value, _) in enumerate(c.most_common(MAX_LEVELS))}
                for name, c in counts.items()
            }
        )

    def transform(self, records: Sequence[PropensityRecord]) -> FloatArray:
        out = np.full((len(records), len(FEATURE_NAMES)), np.nan, dtype=np.float32)
        n_numeric = len(NUMERIC)
        for row, record in enumerate(records):
            out[row, :n_numeric] = _numeric(record)
            for column, (name, value) in enumerate(_categorical(record).items(), n_numeric):
                code = self.vocabularies[name].get(value) if value is not None else None
                out[row, column] = np.nan if code is None else code
        return out


def _numeric(record: PropensityRecord) -> list[float]:
    candidate = record.candidate
    both = pair_features(record.user, [str(candidate["id"])], [candidate.get("category")])[0]
    price = candidate.get("price")
    when = to_datetime(record.at_ms)
    return [
        *both.tolist(),
        math.nan if price is None else math.log1p(max(float(price), 0.0)),
        float(candidate.get("kind") == "variant"),
        float(when.hour),
        float(when.weekday()),
    ]


def _categorical(record: PropensityRecord) -> dict[str, str | None]:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "candidate_id": text(record.candidate.get("id")),
        "candidate_category": text(record.candidate.get("category")),
        "device": text(record.context.get("device")),
        "country": text(record.context.get("country")),
    }


# ------------------------------------------------------------------------------ calibration
@dataclass
class Calibrator:
    """Raw booster probability → calibrated probability (isotonic or Platt)."""

    method: str
    params: dict[str, list[float]]

    @classmethod
    def fit(cls, raw: FloatArray, labels: npt.NDArray[np.int64]) -> Calibrator:
        if len(raw) >= ISOTONIC_MIN_ROWS:
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)
            return cls(
                "isotonic",
                {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()},
            )
        platt = LogisticRegression().fit(_logit(raw)[:, None], labels)
        return cls(
            "platt",
            {"coef": platt.coef_.ravel().tolist(), "intercept": platt.intercept_.tolist()},
        )

    def __call__(self, raw: FloatArray) -> FloatArray:
        if self.method == "isotonic":
            # Refitting on its own thresholds rebuilds the same step function exactly.
            iso = IsotonicRegression(out_of_bounds="clip").fit(self.params["x"], self.params["y"])
            return np.asarray(iso.predict(raw), dtype=np.float64)
        coef, intercept = self.params["coef"][0], self.params["intercept"][0]
        return np.asarray(expit(coef * _logit(raw) + intercept), dtype=np.float64)


def _logit(p: FloatArray) -> FloatArray:
    return np.asarray(logit(np.clip(p, 1e-6, 1 - 1e-6)), dtype=np.float64)


# ------------------------------------------------------------------------------------ model
@dataclass
class TargetModel:
    booster: lgb.Booster
    calibrator: Calibrator


class PropensityModel:
    """Calibrated LightGBM classifiers, one per target (``click``, ``convert``)."""

    kind = "propensity"

    def __init__(self, encoder: Encoder, targets: dict[str, TargetModel]) -> None:
        self.encoder = encoder
        self.targets = targets

    def score(
        self,
        profile: Mapping[str, Any] | None,
        candidates: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any],
        now_ms: int,
        target: str = "click",
    ) -> FloatArray:
        """Calibrated P(`target`) of showing each candidate to this user in this context.

        `profile` is the rendered live profile (None for an unknown user); each
        candidate is ``{"id", "kind": "item"|"variant", "category"?, "price"?}``.
        """
        model = self.targets.get(target)
        if model is None:
            raise InvalidInput(
                f"the propensity model has no {target!r} target; it has: "
                f"{', '.join(sorted(self.targets)) or 'none'}",
                field="target",
            )
        records = [PropensityRecord(profile, c, context, now_ms, 0) for c in candidates]
        raw = np.asarray(model.booster.predict(self.encoder.transform(records), num_threads=1))
        return model.calibrator(raw)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for target, model in self.targets.items():
            (folder / f"booster-{target}.txt").write_text(model.booster.model_to_string())
        spec = {
            "kind": self.kind,
            "features": list(FEATURE_NAMES),
            "vocabularies": self.encoder.vocabularies,
            "calibrators": {
                target: {"method": m.calibrator.method, "params": m.calibrator.params}
                for target, m in self.targets.items()
            },
        }
        (folder / MODEL_FILE).write_text(json.dumps(spec))

    @classmethod
    def load(cls, folder: Path) -> PropensityModel:
        spec = json.loads((folder / MODEL_FILE).read_text())
        if spec["features"] != list(FEATURE_NAMES):
            raise ValueError(f"{folder}: saved with other features; retrain it")
        targets = {
            target: TargetModel(
                lgb.Booster(model_str=(folder / f"booster-{target}.txt").read_text()),
                Calibrator(calibrator["method"], calibrator["params"]),
            )
            for target, calibrator in spec["calibrators"].items()
        }
        return cls(Encoder(spec["vocabularies"]), targets)


def train_propensity(
    data: TrainingData,
    folder: Path,
    params: FeatureParams,
    *,
    holdout: float = 0.2,
    progress: Any = None,
) -> dict[str, Any]:
    """Build records per target, train and calibrate, report, save; metadata for the registry."""
    per_target = {target: records_from_log(data, params, target) for target in OUTCOMES}
    usable = {
        target: records
        for target, records in per_target.items()
        if len(records) >= MIN_RECORDS and 0 < sum(r.label for r in records) < len(records)
    }
    if not usable:
        sizes = ", ".join(f"{t}: {len(r)}" for t, r in per_target.items())
        raise InvalidInput(
            f"not enough labelled exposures to train a propensity model ({sizes}); it needs "
            f"{MIN_RECORDS} per target with both outcomes (impressions or views followed, "
            "or not, by clicks / add-to-cart / purchases)",
            field="archive",
            code="not_enough_data",
        )
    encoder = Encoder.fit([r for records in usable.values() for r in records])
    targets: dict[str, TargetModel] = {}
    metrics: dict[str, Any] = {}
    for done, (target, records) in enumerate(usable.items()):
        if progress is not None:
            progress(f"propensity: {target}", done, len(usable))
        targets[target], metrics[target] = _train_target(encoder, records, holdout)
    PropensityModel(encoder, targets).save(folder / "model")
    return {
        "kind": PropensityModel.kind,
        "params": {"lightgbm": LGB_PARAMS, "horizon_ms": HORIZON_MS},
        "metrics": {
            **metrics,
            "holdout_fraction": holdout,
            "protocol": "exposures in time order: the last share is the holdout; of the rest, "
            "the first 80% train LightGBM and the last 20% fit the calibration",
        },
    }


def _train_target(
    encoder: Encoder, records: Sequence[PropensityRecord], holdout: float
) -> tuple[TargetModel, dict[str, Any]]:
    x = encoder.transform(records)
    y = np.array([r.label for r in records], dtype=np.int64)
    n_test = max(1, round(len(records) * holdout))
    n_fit = len(records) - n_test
    n_train = max(1, round(n_fit * 0.8))
    parts = {
        "train": slice(0, n_train),
        "calibration": slice(n_train, n_fit),
        "test": slice(n_fit, None),
    }
    train_set = lgb.Dataset(
        x[parts["train"]],
        y[parts["train"]],
        feature_name=list(FEATURE_NAMES),
        categorical_feature=list(CATEGORICAL),
        free_raw_data=True,
    )
    booster = lgb.train(LGB_PARAMS, train_set, num_boost_round=200)
    calib_x, calib_y = x[parts["calibration"]], y[parts["calibration"]]
    if len(np.unique(calib_y)) < 2:  # nothing to calibrate against: calibrate on train
        calib_x, calib_y = x[parts["train"]], y[parts["train"]]
    calibrator = Calibrator.fit(np.asarray(booster.predict(calib_x, num_threads=1)), calib_y)
    test_x, test_y = x[parts["test"]], y[parts["test"]]
    raw = np.asarray(booster.predict(test_x, num_threads=1))
    calibrated = calibrator(raw)
    report = {
        "records": len(records),
        "positive_rate": round(float(y.mean()), 6),
        "rows": {name: len(y[part]) for name, part in parts.items()},
        "calibration": calibrator.method,
        "raw": _scores(test_y, raw),
        "calibrated": _scores(test_y, calibrated),
    }
    return TargetModel(booster, calibrator), report


def _scores(labels: npt.NDArray[np.int64], p: FloatArray) -> dict[str, float | None]:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    both = len(np.unique(labels)) == 2
    return {
        "auc": round(float(roc_auc_score(labels, p)), 6) if both else None,
        "brier": round(float(brier_score_loss(labels, clipped)), 6),
        "log_loss": round(float(log_loss(labels, clipped, labels=[0, 1])), 6),
        "mean_prediction": round(float(p.mean()), 6),
    }
