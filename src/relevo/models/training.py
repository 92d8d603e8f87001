"""Training a model version from the archive: fit, evaluate on a temporal holdout, save.

`train_version` is what `relevo train`, ``POST /v1/models/{name}/train`` and
periodic retraining run (in a worker process for the latter two). For a
recommender:

1. the archive's events become interactions and, for the hybrid, point-in-time
   profile features (`ProfileReplay` through the serving feature code);
2. **holdout**: each user's last `holdout` share of interactions (by time) is held
   out; the model is tuned (baselines: on a validation split of the rest; the
   hybrid: inside `fit`), fitted on the rest and scored on the held-out part with
   the metrics of `relevo evaluate`;
3. **refit** on everything with the parameters chosen in step 2 (the version
   serves what happened until the end of the window, not until the cut);
4. the model and its item categories are written to `folder`, with `meta.json`.

The propensity model has its own dataset and metrics (`relevo.models.propensity`).
Nothing here touches the store: registering the version is the registry's job,
so training can run in a process that has no store connection.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relevo.clock import to_iso
from relevo.errors import InvalidInput, NotFound
from relevo.features.profile import FeatureParams
from relevo.models.base import Recommender
from relevo.models.catalog import CATALOG, DEFAULT_MODEL
from relevo.models.evaluation import evaluate_recommender, temporal_split, validation_split
from relevo.models.hybrid import HybridRecommender
from relevo.models.profile_features import FEATURE_NAMES, ProfileReplay, ReplayedPairFeatures
from relevo.models.training_data import TrainingData
from relevo.models.tuning import tune

log = logging.getLogger(__name__)

PROPENSITY = "propensity"
TRAINABLE: tuple[str, ...] = (*CATALOG, PROPENSITY)
"""Names `relevo train --model` accepts: every catalog recommender, and the propensity model."""
DEFAULT_TRAINED: tuple[str, ...] = (DEFAULT_MODEL, PROPENSITY)
HOLDOUT_KS = (10, 20)
#: Below this many interactions a recommender is not trained (nothing to learn).
MIN_INTERACTIONS = 10

Progress = Callable[[str, int, int], None]
"""Told about each step: (description, steps done, steps in total)."""


def check_name(name: str) -> None:
    if name not in TRAINABLE:
        raise NotFound(f"no trainable model {name!r}; known: {', '.join(TRAINABLE)}", field="model")


def train_version(
    name: str,
    data: TrainingData,
    folder: Path,
    params: FeatureParams,
    *,
    holdout: float = 0.2,
    refit: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train model `name` on `data`, write it to `folder`; return its metadata."""
    check_name(name)
    started = time.perf_counter()
    tmp = folder.with_name("." + folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if name == PROPENSITY:
            from relevo.models.propensity import train_propensity

            details = train_propensity(data, tmp, params, holdout=holdout, progress=progress)
        else:
            details = _train_recommender(name, data, tmp, params, holdout, refit, progress)
        meta = {
            "name": name,
            **details,
            "training_window": {
                "from": None if data.first_ms is None else to_iso(data.first_ms),
                "to": None if data.last_ms is None else to_iso(data.last_ms),
            },
            "counts": data.counts(),
            "train_seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        _save_references(data, tmp, params, f"{name}:{folder.name}")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _train_recommender(
    name: str,
    data: TrainingData,
    folder: Path,
    params: FeatureParams,
    holdout: float,
    refit: bool,
    progress: Progress | None,
) -> dict[str, Any]:
    interactions = data.interactions
    if len(interactions) < MIN_INTERACTIONS or interactions.n_items < 2:
        raise InvalidInput(
            f"the archive holds {len(interactions)} interactions on {interactions.n_items} "
            f"items; {MIN_INTERACTIONS} interactions on 2 items at least are needed to train",
            field="archive",
            code="not_enough_data",
        )
    replay = ProfileReplay(data.records, params) if _is_hybrid(name) else None
    steps = 4 if refit else 3
    _step(progress, f"{name}: tuning and fitting on the training part", 0, steps)
    split = temporal_split(interactions, holdout)
    model, chosen = _fit(name, split.train, data, replay, tuned=None)
    _step(progress, f"{name}: scoring the holdout", 1, steps)
    evaluated = len(split.evaluated_users())
    # The hybrid scores with its profile features as of each user's last training
    # interaction: the same point-in-time definition it was trained on.
    metrics = evaluate_recommender(model, split, HOLDOUT_KS) if evaluated else {}
    if refit:
        _step(progress, f"{name}: refitting on the whole window", 2, steps)
        model, _ = _fit(name, interactions, data, replay, tuned=chosen)
    if isinstance(model, HybridRecommender):
        model.pair_features = None  # data, not model: serving passes live profiles
    _step(progress, f"{name}: saving", steps - 1, steps)
    model.save(folder / "model")
    (folder / "items.json").write_text(json.dumps(data.item_categories))
    _step(progress, f"{name}: done", steps, steps)
    return {
        "kind": model.kind,
        "params": model.params(),
        "metrics": {
            "holdout": {key: round(value, 6) for key, value in metrics.items()},
            "holdout_fraction": holdout,
            "evaluated_users": evaluated,
            "protocol": "temporal per user: each user's last interactions by time are held "
            "out; the model is fitted on the rest (see docs/models.md)",
        },
        "refit": refit,
    }


def _fit(
    name: str,
    interactions: Any,
    data: TrainingData,
    replay: ProfileReplay | None,
    tuned: dict[str, Any] | None,
) -> tuple[Recommender, dict[str, Any]]:
    """Fit catalog model `name`; `tuned` reuses the parameters an earlier fit chose."""
    spec = CATALOG[name]
    if _is_hybrid(name):
        hybrid = HybridRecommender(
            **{**spec.params, **(tuned or {}), "pair_feature_names": list(FEATURE_NAMES)}
        )
        assert replay is not None
        hybrid.pair_features = ReplayedPairFeatures(
            replay, interactions.user_ids, interactions.item_ids, data.item_categories
        )
        hybrid.fit(interactions)
        chosen = {"source_params": hybrid.source_params, "tune_sources": False}
        return hybrid, chosen
    if tuned is None:
        tuned = dict(spec.params)
        if spec.grid:
            tuned = tune(
                spec.cls, spec.grid, validation_split(interactions), base_params=spec.params
            ).best_params
    return spec.build(**tuned).fit(interactions), tuned


def _save_references(data: TrainingData, folder: Path, params: FeatureParams, ref: str) -> None:
    """Drift references of the training events (`relevo.monitoring.references`).

    A version without them still serves; drift then falls back to the baseline.
    """
    from relevo.monitoring import references

    try:
        captured = references.capture_for_training(
            data.records, params, reference_id=ref, now_ms=data.last_ms or 0
        )
        references.save(folder, captured)
    except Exception:  # monitoring must never fail a training run
        log.exception("drift references of %s not saved", ref)


def _is_hybrid(name: str) -> bool:
    return issubclass(CATALOG[name].cls, HybridRecommender) if name in CATALOG else False


def _step(progress: Progress | None, what: str, done: int, total: int) -> None:
    if progress is not None:
        progress(what, done, total)
