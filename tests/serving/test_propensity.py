"""The propensity model: labels from the log, calibration, scores placements can use."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from relevo.clock import ManualClock
from relevo.engine import Engine
from relevo.errors import InvalidInput
from relevo.features.profile import FeatureParams
from relevo.models.propensity import HORIZON_MS, Calibrator, records_from_log
from relevo.models.training_data import from_records
from tests.serving.conftest import MINUTE, T0, view, with_catalog, with_traffic


def shown(user: str, item: str, at: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"{user}-{item}-{at}", "type": "impression", "user_id": user,
            "item_id": item, "timestamp": at, **fields}  # fmt: skip


def test_exposures_are_labelled_by_what_followed_them() -> None:
    events = [
        shown("u", "a", T0),
        shown("u", "b", T0),
        shown("u", "c", T0, decision_id="d1"),
        shown("u", "late", T0),
        {**view("u", "a", T0 + MINUTE), "type": "click", "event_id": "c1"},
        {
            "event_id": "c2",
            "type": "click",
            "user_id": "u",
            "timestamp": T0 + 2 * MINUTE,
            "decision_id": "d1",
        },
        {**view("u", "late", T0 + HORIZON_MS + 1), "type": "click", "event_id": "c3"},
        shown("v", "a", T0),
    ]
    data = from_records(sorted(events, key=lambda e: e["timestamp"]))
    records = records_from_log(data, FeatureParams(), "click")
    # u clicked a, and the click on decision d1 answers c; "late" was clicked too late;
    # v never clicked a.
    assert sorted((r.candidate["id"], r.label) for r in records) == [
        ("a", 0), ("a", 1), ("b", 0), ("c", 1), ("late", 0)
    ]  # fmt: skip
    assert all(r.user is None for r in records)  # nobody had a profile before being shown


def test_isotonic_calibration_survives_save_and_load() -> None:
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 1, 3000)
    labels = (rng.uniform(0, 1, 3000) < raw**2).astype(np.int64)
    calibrator = Calibrator.fit(raw, labels)
    assert calibrator.method == "isotonic"
    expected = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, labels)
    probe = np.linspace(-0.1, 1.1, 57)
    reloaded = Calibrator(calibrator.method, calibrator.params)
    np.testing.assert_allclose(reloaded(probe), expected.predict(probe))
    small = Calibrator.fit(raw[:200], labels[:200])
    assert small.method == "platt"
    assert np.all(np.diff(small(probe)) >= 0)


async def test_trained_propensity_is_calibrated_and_scores_candidates(
    engine: Engine, clock: ManualClock
) -> None:
    if engine.store.backend == "redis":
        pytest.skip("training is backend-independent; serving is tested on both below")
    await with_traffic(engine, clock, users=120)
    meta = await engine.train_model("propensity", promote=True)
    click = meta["metrics"]["click"]
    assert click["calibration"] in {"isotonic", "platt"}
    for part in ("raw", "calibrated"):
        assert set(click[part]) == {"auc", "brier", "log_loss", "mean_prediction"}
    assert click["calibrated"]["auc"] > 0.6
    assert click["calibrated"]["mean_prediction"] == pytest.approx(click["positive_rate"], abs=0.05)
    assert "convert" in meta["metrics"]
    # A visitor who just looked at shoes is more likely to click shoes than pans.
    now = clock.now_ms()
    await engine.ingest([view("fan", f"sho-00{n}", now + n) for n in range(5)])
    clock.advance(10)
    scored = await engine.score_variants(
        "fan", [{"item_id": "sho-020"}, {"item_id": "kit-020"}], context={"device": "mobile"}
    )
    assert scored.model_version == "v1"
    assert not scored.fallback
    (_, shoes), (_, pans) = scored.scores
    assert shoes is not None
    assert pans is not None
    assert 0 <= pans < shoes <= 1
    variants = await engine.score_variants(
        None, [{"variant_id": "A", "category": "shoes"}, {"variant_id": "B"}], target="convert"
    )
    assert all(p is not None and 0 <= p <= 1 for _, p in variants.scores)
    with pytest.raises(InvalidInput, match="target"):
        await engine.score_variants("fan", [{"item_id": "sho-020"}], target="dwell")
    with pytest.raises(InvalidInput, match="item_id or a variant_id"):
        await engine.score_variants("fan", [{"id": "x"}])


async def test_without_a_propensity_model_scores_are_null(engine: Engine) -> None:
    await with_catalog(engine)
    scored = await engine.score_variants("anyone", [{"item_id": "sho-001"}, {"variant_id": "B"}])
    assert scored.to_dict() == {
        "target": "click",
        "scores": [{"id": "sho-001", "p": None}, {"id": "B", "p": None}],
        "model": {"name": "propensity", "version": None},
        "fallback": True,
    }
