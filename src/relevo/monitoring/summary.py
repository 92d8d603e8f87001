"""The dashboard's data (``GET /v1/monitoring/summary``), in one call.

Rates come from per-minute counters in the store (all processes); latency
percentiles from this host's request histograms; the rest from the engine's own
reports (rules, experiments, models, drift, KPIs). Everything is aggregate: no
user appears here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relevo.clock import to_iso
from relevo.monitoring import metrics
from relevo.monitoring.monitor import DECISION_RATE, FALLBACK_RATE, RATE_BUCKET_MS
from relevo.store import keys, sharded

if TYPE_CHECKING:
    from relevo.engine import Engine

MINUTES = 30


async def summary(engine: Engine) -> dict[str, Any]:
    await engine.monitoring.flush()
    now = engine.clock.now_ms()
    current = now - now % RATE_BUCKET_MS
    minutes = [current - back * RATE_BUCKET_MS for back in range(MINUTES - 1, -1, -1)]
    store = engine.store
    kinds = sorted(await store.map_all(keys.EVENT_TOTALS))

    async def per_minute(key: str) -> list[int]:
        return [
            await store.periodic_sum(key, m, m + RATE_BUCKET_MS - 1, RATE_BUCKET_MS)
            for m in minutes
        ]

    events = [0] * MINUTES
    for kind in kinds:
        for index, count in enumerate(await per_minute(keys.event_rate_key(kind))):
            events[index] += count
    decisions = await per_minute(DECISION_RATE)
    fallbacks = await per_minute(FALLBACK_RATE)
    experiments = []
    for experiment_id in sorted(engine.experiments.current.by_id):
        found = await engine.experiment_results(experiment_id)
        arms = [
            {
                "name": arm["name"],
                "users": arm["users"],
                "exposures": arm["exposures"],
                "ctr": arm["ctr"],
                "conversion_rate": arm["conversion_rate"],
            }
            for arm in found["results"]["arms"]
        ]
        experiments.append(
            {
                "id": experiment_id,
                "placement": found["experiment"].get("placement"),
                "status": found["experiment"].get("status"),
                "arms": arms,
                "srm": found["results"].get("srm"),
            }
        )
    models = [
        {
            "name": entry["name"],
            "version": meta.get("version"),
            "kind": meta.get("kind"),
            "active": meta.get("active"),
            "created_at": meta.get("created_at"),
            "metrics": (meta.get("metrics") or {}).get("holdout", {}),
        }
        for entry in await engine.model_versions()
        for meta in entry.get("versions", ())
    ]
    rules = await _rules(engine)
    return {
        "at": to_iso(now),
        "minutes": [to_iso(m) for m in minutes],
        "events_per_second": [round(n / 60, 3) for n in events],
        "decisions_per_second": [round(n / 60, 3) for n in decisions],
        "fallback_rate": [
            round(f / d, 4) if d else 0.0 for f, d in zip(fallbacks, decisions, strict=True)
        ],
        "latency": metrics.latency_percentiles(),
        "rules": rules,
        "experiments": experiments,
        "models": models,
        "drift": await engine.monitoring.drift_report(),
        "kpis": (await engine.monitoring.kpi_report())["kpis"],
    }


async def _rules(engine: Engine) -> list[dict[str, Any]]:
    """Per rule: evaluations, fires and errors on events and timers, and for decision
    rules the decisions they shaped and the clicks and conversions those got."""
    found: dict[str, dict[str, Any]] = {}
    zero = {
        "evaluations": 0,
        "fires": 0,
        "errors": 0,
        "decisions": 0,
        "clicks": 0,
        "conversions": 0,
    }
    for rule, stats in (await engine.rule_stats.read()).items():
        entry = found.setdefault(rule, dict(zero))
        for name in ("evaluations", "fires", "errors"):
            entry[name] = int(stats[name])
    for field, value in (await sharded.read(engine.store, keys.RULE_ENGAGEMENT)).items():
        rule, _, name = field.rpartition("|")
        entry = found.setdefault(rule, dict(zero))
        entry["decisions" if name == "exposures" else name] = int(value)
    return [{"rule": rule, **found[rule]} for rule in sorted(found)]
