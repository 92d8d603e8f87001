"""Counters of exposures and outcomes, and the reports built from them.

Per experiment arm (`experiment:<id>:stats`), per placement variant
(`placement:<id>:stats`) and per decision rule (`rules:engagement`), the store
keeps fields ``<name>|<counter>`` (spread over shards by user,
`relevo.store.sharded`): users, exposures, clicks, conversions, revenue in cents
and the sum of squared per-user revenue (cents²) — the sufficient statistics of
`relevo.experiments.stats`, so reports need no raw data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relevo.clock import Clock
from relevo.decisions.experiments import Experiment
from relevo.experiments.stats import ArmStats, ExperimentReport, experiment_report
from relevo.store import keys, sharded
from relevo.store.base import Store

CACHE_MS = 1_000
COUNTERS = ("users", "exposures", "clicks", "conversions", "revenue_cents", "revenue_sq")


@dataclass(slots=True)
class ArmCounters:
    users: int = 0
    exposures: int = 0
    clicks: int = 0
    conversions: int = 0
    revenue_cents: int = 0
    revenue_sq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "exposures": self.exposures,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "revenue": self.revenue_cents / 100,
            "ctr": self.clicks / self.exposures if self.exposures else None,
        }


def parse_counters(fields: Mapping[str, int]) -> dict[str, ArmCounters]:
    found: dict[str, ArmCounters] = {}
    for name, value in fields.items():
        owner, _, counter = name.rpartition("|")
        if counter in COUNTERS:
            setattr(found.setdefault(owner, ArmCounters()), counter, int(value))
    return found


class StatsCache:
    """Counters read at most once a second per key: bandits read them on every decision."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._cache: dict[str, tuple[int, dict[str, ArmCounters]]] = {}

    async def _read(self, key: str) -> dict[str, ArmCounters]:
        now = self.clock.now_ms()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < CACHE_MS:
            return cached[1]
        counters = parse_counters(await sharded.read(self.store, key))
        self._cache[key] = (now, counters)
        return counters

    async def experiment(self, experiment_id: str) -> dict[str, ArmCounters]:
        return await self._read(keys.experiment_stats_key(experiment_id))

    async def placement(self, placement_id: str) -> dict[str, ArmCounters]:
        return await self._read(keys.placement_stats_key(placement_id))


def arm_stats(name: str, counters: ArmCounters) -> ArmStats:
    return ArmStats(
        name=name,
        users=counters.users,
        exposures=counters.exposures,
        clicks=min(counters.clicks, counters.exposures),
        conversions=min(counters.conversions, counters.users),
        revenue_sum=counters.revenue_cents / 100,
        revenue_sum_sq=counters.revenue_sq / 10_000,
    )


async def experiment_results(
    store: Store, experiment: Experiment, previous: ExperimentReport | None = None
) -> ExperimentReport:
    """Per-arm KPIs with intervals, tests against control and the SRM check."""
    counters = parse_counters(await sharded.read(store, keys.experiment_stats_key(experiment.id)))
    arms = [arm_stats(arm.name, counters.get(arm.name, ArmCounters())) for arm in experiment.arms]
    weights = {arm.name: arm.weight for arm in experiment.arms}
    return experiment_report(
        experiment.id, arms, experiment.control_arm, weights, previous=previous
    )
