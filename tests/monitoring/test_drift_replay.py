"""Drift end to end: a replayed stream through the engine, a baseline from the archive,
then an unshifted and a shifted stretch; on both backends, time from the manual clock.

Acceptance (issue 6): the shifted feature moves from ok to drift and the alert is
emitted once (one outbox action with a deterministic id: evaluating again adds
nothing); unshifted windows stay ok.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.monitoring import baseline
from relevo.monitoring.alerts import DRIFT_DETECTED, drift_alert
from tests.monitoring.streams import shoppers

T0 = 1_767_225_600_000
HOUR = 3_600_000
WINDOW = 500
BATCH = 1000


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    clock.set(T0 + HOUR)
    engine = Engine(
        settings.model_copy(update={"demo_catalog": True, "drift_window": WINDOW}), clock
    )
    await engine.start(background=False)
    yield engine
    await engine.stop()


async def replay(engine: Engine, clock: ManualClock, events: list[dict[str, Any]]) -> None:
    """Ingest in batches, the clock following the events (never behind them)."""
    for start in range(0, len(events), BATCH):
        batch = events[start : start + BATCH]
        clock.set(max(clock.now_ms(), batch[-1]["timestamp"] + 1000))
        report = await engine.ingest(batch)
        assert report.count("accepted") == len(batch)


async def drift_actions(engine: Engine) -> list[dict[str, Any]]:
    actions, _ = await engine.outbox.read(None, 1000)
    return [a for a in actions if a["type"] == DRIFT_DETECTED]


async def test_a_shifted_feature_moves_from_ok_to_drift_and_alerts_once(
    engine: Engine, clock: ManualClock
) -> None:
    rng = np.random.default_rng(6)
    await replay(engine, clock, shoppers(rng, 2000, T0, prefix="ref"))
    captured = await baseline.capture(engine, "archive")
    assert "event.value" in captured["features"]
    assert "context.device" in captured["features"]

    # unshifted traffic: no drift, no alert (the odd `warn` at p < 0.01 is expected
    # among a dozen features; test_false_alarms bounds how often it happens)
    await replay(engine, clock, shoppers(rng, 1000, clock.now_ms(), prefix="live"))
    assert (await engine.monitoring.evaluate())["evaluated"]
    report = await engine.monitoring.drift_report()
    assert report["reference"]["id"] == captured["id"]
    value = next(f for f in report["features"] if f["feature"] == "event.value")
    assert value["windows"] >= 2
    assert value["status"] == "ok"
    assert not [f for f in report["features"] if f["status"] == "drift"]
    assert await drift_actions(engine) == []

    # purchase values 2.5 times higher: drift, and one alert
    await replay(
        engine, clock, shoppers(rng, 1000, clock.now_ms(), prefix="shift", value_scale=2.5)
    )
    outcome = await engine.monitoring.evaluate()
    report = await engine.monitoring.drift_report()
    value = next(f for f in report["features"] if f["feature"] == "event.value")
    assert value["status"] == "drift"
    assert value["test"] == "ks"
    assert value["psi"] >= 0.25
    assert value["p_value"] < 0.001
    assert report["status"] == "drift"
    unshifted = next(f for f in report["features"] if f["feature"] == "context.device")
    assert unshifted["status"] == "ok"
    # one action per drifting feature: the value, and the monetary value it feeds
    alerts = {a["payload"]["feature"]: a for a in await drift_actions(engine)}
    assert sorted(alerts) == ["event.value", "profile.monetary"]
    assert sorted(outcome["drift_alerts"]) == sorted(a["id"] for a in alerts.values())
    value_alert = alerts["event.value"]
    window = value_alert["payload"]["window"]  # the first drifting window: the episode
    assert value_alert["id"] == f"drift:{captured['id']}:event.value:{window}"
    assert window < value["windows"]

    # evaluating again, with or without new (still shifted) traffic, adds no action
    assert (await engine.monitoring.evaluate())["drift_alerts"] == []
    await replay(engine, clock, shoppers(rng, 500, clock.now_ms(), prefix="more", value_scale=2.5))
    await engine.monitoring.evaluate()
    assert len(await drift_actions(engine)) == 2
    # the outbox keeps an id once: a round repeated after a crash stores nothing new
    again = drift_alert(captured["id"], "event.value", value_alert["payload"]["window"], {}, 0)
    await engine.outbox.add([again])
    assert len(await drift_actions(engine)) == 2
