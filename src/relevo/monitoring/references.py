"""Reference distributions: what "normal" looks like for each monitored feature.

A reference is captured from a set of values computed by `relevo.monitoring.features`
(so it compares with live windows) and saved as JSON:

- **with a model version**: every trained version gets ``references.json`` next to
  its ``meta.json``, from the events it was trained on (`capture_for_training`).
  Drift is then measured against the data the served model learnt from;
- **as a baseline** (``POST /v1/monitoring/baseline``, ``relevo monitoring baseline``),
  kept in the store, for a site that serves no trained model yet: from the archive
  or from the values observed live.

A served model's reference wins over a baseline: it is what the model knows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from relevo.clock import to_iso
from relevo.features.profile import FeatureParams
from relevo.monitoring.drift import (
    Reference,
    ReferenceProfile,
    categorical_reference,
    numeric_reference,
)
from relevo.monitoring.features import Value, is_categorical, replay_features

log = logging.getLogger(__name__)

FILE_NAME = "references.json"
MAX_ROWS = 200_000
"""At most this many (newest) events make a reference: enough for every test's power,
and bounded time at training."""
MIN_VALUES = 20
"""A feature with fewer values than this gets no reference (nothing to compare with)."""


class ReferenceSet(BaseModel):
    """References of the monitored features, with where they come from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    source: Literal["model", "baseline"]
    created_at: str
    values: int
    """How many rows (events) the references were captured from."""
    profile: ReferenceProfile


def capture(
    columns: Mapping[str, Sequence[Value]],
    *,
    reference_id: str,
    source: Literal["model", "baseline"],
    now_ms: int,
) -> ReferenceSet:
    """References for each column with enough values (see `MIN_VALUES`)."""
    features: dict[str, Reference] = {}
    rows = 0
    for name, values in sorted(columns.items()):
        rows = max(rows, len(values))
        if len(values) < MIN_VALUES:
            continue
        if is_categorical(name):
            features[name] = categorical_reference(None if v is None else str(v) for v in values)
        else:
            array = np.array(
                [np.nan if not isinstance(v, int | float) else float(v) for v in values],
                dtype=float,
            )
            features[name] = numeric_reference(array)
    return ReferenceSet(
        id=reference_id,
        source=source,
        created_at=to_iso(now_ms),
        values=rows,
        profile=ReferenceProfile(features=features),
    )


def capture_for_training(
    records: Sequence[dict[str, Any]],
    params: FeatureParams,
    *,
    reference_id: str,
    now_ms: int,
) -> ReferenceSet:
    """The reference of a model version: its training events through the live feature code."""
    kept = list(records[-MAX_ROWS:])
    columns = replay_features(kept, params)
    return capture(columns, reference_id=reference_id, source="model", now_ms=now_ms)


def save(folder: Path, references: ReferenceSet) -> Path:
    path = folder / FILE_NAME
    path.write_text(references.model_dump_json())
    return path


def load(folder: Path) -> ReferenceSet | None:
    """The references saved in a version's folder; None when it has none (older versions)."""
    path = folder / FILE_NAME
    if not path.is_file():
        return None
    try:
        return ReferenceSet.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        log.exception("unreadable drift references %s", path)
        return None
