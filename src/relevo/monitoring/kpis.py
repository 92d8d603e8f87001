"""KPI anomalies: CTR and conversion of each placement, hour by hour, against their past.

Counting: each personalized decision (one that was recorded, i.e. not a fallback)
is an *exposure* of its placement in the hour it was made; its first click (or
add-to-cart) and first purchase credit that same hour (`relevo.decisions.exposures`
tells us). Processes count in memory and add to one store map per placement
every second or so, fields ``<hour ms>|exposures`` and so on.

Checking: the last *complete* hour is compared with a baseline by a Laney p-prime
control chart:

- baseline: the same hour on the previous 7 days when at least 3 of them have
  exposures (traffic is seasonal by hour of day and this compares like with like),
  else the previous 24 hours (a young site);
- p_bar = sum of successes / sum of exposures of the baseline; each baseline hour's
  ``z_i = (p_i - p_bar) / sqrt(p_bar(1-p_bar)/n_i)``; ``sigma_z`` = mean moving range of the z_i
  / 1.128 (Laney's correction for between-hour variation that a plain p-chart
  would read as signal with large n), floored at 1 so the chart is never more
  nervous than a p-chart;
- the hour's ``z = (p - p_bar) / (sqrt(p_bar(1-p_bar)/n) · sigma_z)``: ``anomaly`` when
  ``z ≤ -3``, ``warn`` when ``z ≤ -2`` (drops only: a KPI going up is no incident),
  ``ok`` otherwise, ``no_data`` when the hour or the baseline is too thin to judge
  (fewer than `MIN_EXPOSURES` exposures, fewer than 3 baseline hours, p_bar of 0 or 1).

>>> check([(10, 100)] * 7, (2, 100)).status
'anomaly'
>>> check([(10, 100)] * 7, (8, 100)).status
'ok'
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from relevo.clock import Clock, to_iso
from relevo.monitoring.alerts import kpi_alert
from relevo.rules.engine import OutboxMessage
from relevo.store.base import Store

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
KEPT_MS = 8 * DAY_MS
PLACEMENTS = "monitoring:kpi:placements"
STATE = "monitoring:kpi:state"
MIN_EXPOSURES = 30
MIN_BASELINE = 3
KPIS = {"ctr": "clicks", "conversion": "conversions"}

KpiStatus = Literal["ok", "warn", "anomaly", "no_data"]


def counts_key(placement: str) -> str:
    return f"monitoring:kpi:{placement}"


@dataclass(frozen=True, slots=True)
class KpiCheck:
    status: KpiStatus
    z: float | None
    rate: float | None
    baseline_rate: float | None
    sigma_z: float | None


def check(baseline: Sequence[tuple[int, int]], current: tuple[int, int]) -> KpiCheck:
    """Laney p-prime check of `current` (successes, exposures) against `baseline` hours."""
    hours = [(x, n) for x, n in baseline if n > 0]
    x_now, n_now = current
    rate = x_now / n_now if n_now else None
    total_n = sum(n for _, n in hours)
    p_bar = sum(x for x, _ in hours) / total_n if total_n else None
    if n_now < MIN_EXPOSURES or len(hours) < MIN_BASELINE or p_bar is None or not 0 < p_bar < 1:
        return KpiCheck("no_data", None, rate, p_bar, None)
    spread = p_bar * (1 - p_bar)
    zs = [(x / n - p_bar) / math.sqrt(spread / n) for x, n in hours]
    ranges = [abs(b - a) for a, b in itertools.pairwise(zs)]
    sigma_z = max(sum(ranges) / len(ranges) / 1.128, 1.0) if ranges else 1.0
    z = (x_now / n_now - p_bar) / (math.sqrt(spread / n_now) * sigma_z)
    status: KpiStatus = "anomaly" if z <= -3 else "warn" if z <= -2 else "ok"
    return KpiCheck(status, z, rate, p_bar, sigma_z)


class KpiCounters:
    """This process's counts by (placement, hour, counter), flushed to the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, placement: str, at_ms: int, counter: str) -> None:
        hour = at_ms - at_ms % HOUR_MS
        self._pending[placement][f"{hour}|{counter}"] += 1

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        if not pending:
            return
        await self.store.map_set(PLACEMENTS, dict.fromkeys(pending, b"1"))
        for placement, counts in pending.items():
            await self.store.map_incr(counts_key(placement), dict(counts), ttl_ms=KEPT_MS)


class Kpis:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def placements(self) -> list[str]:
        return sorted(await self.store.map_all(PLACEMENTS))

    async def hourly(self, placement: str) -> dict[int, dict[str, int]]:
        """Counts by hour (ms) for one placement; old hours are pruned as a side effect."""
        fields = await self.store.map_all(counts_key(placement))
        horizon = self.clock.now_ms() - KEPT_MS
        by_hour: dict[int, dict[str, int]] = defaultdict(dict)
        stale = []
        for name, value in fields.items():
            hour_text, _, counter = name.partition("|")
            hour = int(hour_text)
            if hour < horizon:
                stale.append(name)
                continue
            by_hour[hour][counter] = int(value)
        if stale:
            await self.store.map_delete(counts_key(placement), stale)
        return dict(by_hour)

    async def evaluate(self) -> tuple[dict[str, Any], list[OutboxMessage]]:
        """Check the last complete hour of every placement; new episodes' alerts."""
        now = self.clock.now_ms()
        hour = now - now % HOUR_MS - HOUR_MS
        blob = await self.store.get(STATE)
        previous: dict[str, Any] = {} if blob is None else orjson.loads(blob)
        state: dict[str, Any] = {}
        alerts: list[OutboxMessage] = []
        for placement in await self.placements():
            by_hour = await self.hourly(placement)
            for kpi, counter in KPIS.items():
                entry = _evaluate_one(by_hour, hour, counter)
                key = f"{placement}|{kpi}"
                before = previous.get(key, {})
                episode = None
                if entry["status"] == "anomaly":
                    continuing = before.get("status") == "anomaly" and before.get("episode")
                    episode = int(before["episode"]) if continuing else hour
                    if not continuing:  # a new episode: alert once (its id names the hour)
                        details = {
                            "hour": to_iso(hour),
                            "z": entry["z"],
                            "rate": entry["rate"],
                            "baseline_rate": entry["baseline_rate"],
                        }
                        alerts.append(kpi_alert(placement, kpi, episode, details, now))
                state[key] = {**entry, "episode": episode, "placement": placement, "kpi": kpi}
        unchanged = orjson.loads(orjson.dumps(state)) == {
            k: v for k, v in previous.items() if k != "_at"
        }
        if not unchanged:  # a quiet system writes nothing
            await self.store.set_many({STATE: orjson.dumps({**state, "_at": now})})
        return state, alerts

    async def report(self) -> dict[str, Any]:
        """The body of ``GET /v1/monitoring/kpis`` (the last evaluation)."""
        blob = await self.store.get(STATE)
        state: dict[str, Any] = {} if blob is None else orjson.loads(blob)
        at = state.pop("_at", None)
        kpis = [
            {**entry, "hour": None if entry.get("hour") is None else to_iso(entry["hour"])}
            for _, entry in sorted(state.items())
        ]
        return {"evaluated_at": None if at is None else to_iso(at), "kpis": kpis}


def _evaluate_one(by_hour: dict[int, dict[str, int]], hour: int, counter: str) -> dict[str, Any]:
    def pair(at: int) -> tuple[int, int]:
        found = by_hour.get(at, {})
        return found.get(counter, 0), found.get("exposures", 0)

    seasonal = [pair(hour - day * DAY_MS) for day in range(7, 0, -1)]
    if sum(1 for _, n in seasonal if n > 0) >= MIN_BASELINE:
        method, baseline = "same_hour_previous_days", seasonal
    else:
        method = "previous_24_hours"
        baseline = [pair(hour - back * HOUR_MS) for back in range(24, 0, -1)]
    current = pair(hour)
    found = check(baseline, current)
    return {
        "hour": hour,
        "status": found.status,
        "method": method,
        "exposures": current[1],
        "successes": current[0],
        "rate": found.rate,
        "baseline_rate": found.baseline_rate,
        "z": None if found.z is None else round(found.z, 4),
        "sigma_z": found.sigma_z,
    }
