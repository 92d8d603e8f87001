"""KPI anomalies: the Laney p' chart, episodes alerted once, and the counts behind them."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import numpy as np
import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.monitoring.alerts import KPI_ANOMALY
from relevo.monitoring.kpis import DAY_MS, HOUR_MS, KpiCounters, Kpis, check
from relevo.rules.outbox import Outbox
from tests.conftest import StoreHarness

T0 = 1_767_225_600_000  # midnight UTC


def test_a_drop_beyond_three_sigma_is_an_anomaly_and_two_a_warning() -> None:
    baseline = [(100, 1000)] * 7  # 10 % every day
    sigma = math.sqrt(0.1 * 0.9 / 1000)
    assert check(baseline, (100, 1000)).status == "ok"
    assert check(baseline, (round(1000 * (0.1 - 2.5 * sigma)), 1000)).status == "warn"
    assert check(baseline, (round(1000 * (0.1 - 3.5 * sigma)), 1000)).status == "anomaly"
    assert check(baseline, (200, 1000)).status == "ok"  # a rise is no incident
    # too thin to judge: few exposures now, few baseline hours, or nothing ever clicked
    assert check(baseline, (0, 10)).status == "no_data"
    assert check([(100, 1000)] * 2, (0, 1000)).status == "no_data"
    assert check([(0, 1000)] * 7, (0, 1000)).status == "no_data"


def test_laney_widens_the_limits_when_hours_vary_more_than_binomially() -> None:
    rng = np.random.default_rng(3)
    # hour-to-hour variation of the true rate (8 % to 12 %) on large samples
    baseline = [(int(rng.binomial(20_000, p)), 20_000) for p in rng.uniform(0.08, 0.12, 24)]
    found = check(baseline, (1700, 20_000))  # 8.5 %: a p-chart would call this an anomaly
    assert found.sigma_z is not None
    assert found.sigma_z > 3
    assert found.status == "ok"
    p_bar = sum(x for x, _ in baseline) / sum(n for _, n in baseline)
    plain_z = (0.085 - p_bar) / math.sqrt(p_bar * (1 - p_bar) / 20_000)
    assert plain_z < -3
    assert found.z == pytest.approx(plain_z / found.sigma_z)


async def fill(
    counters: KpiCounters,
    clock: ManualClock,
    placement: str,
    hour: int,
    exposures: int,
    clicks: int,
) -> None:
    """Count an hour's traffic as it happens (the clock in that hour: the map's TTL runs)."""
    clock.set(hour + 30 * 60_000)
    for n in range(exposures):
        counters.add(placement, hour + n, "exposures")
    for n in range(clicks):
        counters.add(placement, hour + n, "clicks")
    await counters.flush()


async def test_an_episode_alerts_once(harness: StoreHarness) -> None:
    store, clock = harness.store, harness.clock
    counters, kpis, outbox = KpiCounters(store), Kpis(store, clock), Outbox(store, clock)
    now = T0 + 8 * DAY_MS + 10 * HOUR_MS
    last = now - HOUR_MS  # the last complete hour (09:00)
    for day in range(7, 0, -1):
        await fill(counters, clock, "home", last - day * DAY_MS, 200, 20)
    await fill(counters, clock, "home", last, 200, 2)  # 1 % instead of 10 %
    clock.set(now + 5 * 60_000)

    async def round_() -> list[str]:
        _, alerts = await kpis.evaluate()
        await outbox.add(alerts)
        return [alert.message_id for alert in alerts]

    assert await round_() == [f"kpi:home:ctr:{last}"]
    report = await kpis.report()
    ctr = next(k for k in report["kpis"] if k["kpi"] == "ctr")
    assert (ctr["status"], ctr["method"], ctr["exposures"]) == (
        "anomaly",
        "same_hour_previous_days",
        200,
    )
    conversion = next(k for k in report["kpis"] if k["kpi"] == "conversion")
    assert conversion["status"] == "no_data"  # nothing ever converted
    assert await round_() == []  # the same hour again
    # the next hour is as bad: the same episode, no new alert (its baseline is young:
    # the previous 24 hours)
    await fill(counters, clock, "home", last + HOUR_MS, 200, 2)
    clock.set(now + HOUR_MS + 5 * 60_000)
    assert await round_() == []
    actions, _ = await outbox.read(None, 100)
    assert [a["type"] for a in actions] == [KPI_ANOMALY]
    assert actions[0]["payload"]["placement"] == "home"


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    clock.set(T0)
    engine = Engine(settings.model_copy(update={"demo_catalog": True}), clock)
    await engine.start(background=False)
    await engine.put_config(
        "placements",
        {
            "placements": [
                {"id": "kpi_recs", "k": 2, "default_items": ["boo-001"], "deadline_ms": 2_000}
            ]
        },
    )
    yield engine
    await engine.stop()


async def test_decisions_and_their_clicks_are_counted_per_placement_and_hour(
    engine: Engine,
) -> None:
    decisions = [
        await engine.decide({"user_id": f"k-{n}", "placement": "kpi_recs"}) for n in range(4)
    ]
    assert not any(d["fallback"] for d in decisions)
    clicks = [
        {
            "type": "click",
            "user_id": f"k-{n}",
            "item_id": d["items"][0]["item_id"],
            "decision_id": d["decision_id"],
        }
        for n, d in enumerate(decisions[:2])
    ]
    await engine.ingest([*clicks, {**clicks[0], "event_id": "again"}])  # a second click: once
    await engine.ingest(
        [
            {
                "type": "purchase",
                "user_id": "k-0",
                "item_id": decisions[0]["items"][0]["item_id"],
                "value": 5,
                "decision_id": decisions[0]["decision_id"],
            }
        ]
    )
    await engine.monitoring.flush()
    hourly = await engine.monitoring.kpis.hourly("kpi_recs")
    assert hourly == {T0: {"exposures": 4, "clicks": 2, "conversions": 1}}
    # the values observed on the way reached the shared stream, and a round runs
    assert await engine.monitoring.observations.columns()
    assert (await engine.monitoring.evaluate())["evaluated"]
