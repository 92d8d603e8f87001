"""Every trained version gets drift references, which then win over the baseline;
drift on a served model can start a retraining (RELEVO_RETRAIN_ON_DRIFT)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.monitoring import baseline, references
from relevo.monitoring.metrics import SharedState, scrape_families
from tests.serving.conftest import T0, with_traffic


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    clock.set(T0)
    engine = Engine(
        settings.model_copy(
            update={"serving_model": "popularity", "drift_window": 100, "retrain_on_drift": True}
        ),
        clock,
    )
    await engine.start(background=False)
    yield engine
    await engine.stop()


async def test_a_trained_version_carries_references_that_monitoring_uses(
    engine: Engine, clock: ManualClock
) -> None:
    await with_traffic(engine, clock, users=30)
    await baseline.capture(engine, "archive")
    assert (await engine.monitoring.reference()).source == "baseline"  # type: ignore[union-attr]
    meta = await engine.train_model("popularity", promote=True)
    folder = engine.settings.models_path / "popularity" / meta["version"]
    saved = references.load(folder)
    assert saved is not None
    assert saved.id == f"popularity:{meta['version']}"
    assert {"event.type", "event.category", "profile.events"} <= set(saved.profile.features)
    assert 0 < saved.values <= meta["counts"]["events"]
    # the served model's references win over the baseline
    reference = await engine.monitoring.reference()
    assert reference is not None
    assert (reference.id, reference.source) == (saved.id, "model")
    report = await engine.monitoring.drift_report()
    assert report["reference"]["id"] == saved.id
    # and /metrics names the model version
    state = await engine.monitoring.shared_state()
    info = next(f for f in scrape_families(state) if f.name == "relevo_model_info")
    assert any(
        s.labels == {"model": "popularity", "version": meta["version"], "kind": meta["kind"]}
        and s.value == 1.0
        for s in info.samples
    )


async def test_drift_starts_one_retraining_when_asked(engine: Engine, clock: ManualClock) -> None:
    started = asyncio.Event()
    calls: list[int] = []

    async def retrain() -> None:
        calls.append(clock.now_ms())
        started.set()

    engine.monitoring.retrain = retrain
    await with_traffic(engine, clock, users=30)
    await baseline.capture(engine, "archive")
    await engine.monitoring.evaluate()
    assert calls == []
    # a broken feed: every event now names the same item (one category only)
    shifted = [
        {
            "type": "view",
            "user_id": f"late-{n}",
            "item_id": "sho-001",
            "timestamp": clock.now_ms() - 1000 + n,
        }
        for n in range(400)
    ]
    report = await engine.ingest(shifted)
    assert report.count("accepted") == 400
    outcome = await engine.monitoring.evaluate()
    assert any(":event.category:" in alert for alert in outcome["drift_alerts"])
    await asyncio.wait_for(started.wait(), timeout=10)
    assert len(calls) == 1


def test_the_engine_retrains_through_its_trainer(settings: Settings) -> None:
    engine = Engine(settings)
    assert engine.monitoring.retrain == engine._retrain_after_drift
    assert SharedState().timers_pending == 0
