"""Prometheus metrics: what each process counts, and what a scrape reads from the store.

Two kinds of numbers, kept apart on purpose:

- **Process metrics** (request latency, events by type and outcome, ingestion lag,
  decisions, store operation latency) are counted where they happen, in memory, by
  `prometheus_client`. When ``PROMETHEUS_MULTIPROC_DIR`` is set (several uvicorn
  workers or API processes on one host) the library writes them to files there
  and a scrape of any process sums every process's files (`MultiProcessCollector`).
- **Shared state** (rule evaluations/fires/errors, timers pending, model versions,
  drift and KPI status) already lives in the store, summed across all processes; it
  is read at scrape time (`scrape_families`) instead of being counted twice. A
  scrape of any process therefore reports the cluster's value for these.

Label values are bounded: routes are templates (``/v1/users/{user_id}``, never a
raw path), event types outside the known ones are reported as ``custom``.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter as CounterOf
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from relevo.events import STANDARD_EVENT_TYPES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# `*_created` series double the output for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Latency buckets from 1 ms to 10 s: decisions live around 5-50 ms, training-sized
#: admin calls in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86_400.0)

HTTP_REQUESTS = Counter(
    "relevo_http_requests",
    "HTTP requests answered, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "relevo_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS = Counter(
    "relevo_events",
    "Events received, by type and outcome (accepted, duplicate, rejected).",
    ["type", "status"],
)
EVENT_LAG = Histogram(
    "relevo_event_lag_seconds",
    "Ingestion lag of accepted events: arrival time minus the event's own timestamp.",
    buckets=LAG_BUCKETS,
)
DECISIONS = Counter(
    "relevo_decisions",
    "Decisions answered, by placement, policy and whether the fallback answered.",
    ["placement", "policy", "fallback"],
)
DECISION_DURATION = Histogram(
    "relevo_decision_duration_seconds",
    "Time to compute a decision, by placement.",
    ["placement"],
    buckets=LATENCY_BUCKETS,
)
ACTIONS_LATE = Counter(
    "relevo_actions_late",
    "Rule actions not emitted: their moment was older than RELEVO_ACTION_MAX_DELAY "
    "(a backfill, a replay, a long outage).",
)
MARKS_SWEPT_DOCUMENTS = Counter(
    "relevo_marks_swept_documents",
    "Profiles whose dedupe marks past RELEVO_DEDUPE_HORIZON a marks sweep dropped.",
)
MARKS_SWEPT_BYTES = Counter(
    "relevo_marks_swept_bytes",
    "Bytes of dedupe marks past RELEVO_DEDUPE_HORIZON dropped by marks sweeps.",
)
STORE_DURATION = Histogram(
    "relevo_store_operation_duration_seconds",
    "Time of one store call, by operation (get_many, docs_write, ...).",
    ["operation"],
    buckets=STORE_BUCKETS,
)

LOOP_LAG = Histogram(
    "relevo_event_loop_lag_seconds",
    "How late the process's event loop ran a callback due every 20 ms: the time every "
    "request in flight waited behind whatever held the loop (relevo.monitoring.loop_lag).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

KNOWN_EVENT_TYPES = frozenset({*STANDARD_EVENT_TYPES, "identify", "consent"})
STATUS_VALUE = {"ok": 0, "warn": 1, "drift": 2, "anomaly": 2}
"""Statuses as gauge values: 0 fine, 1 worth a look, 2 alerting."""


_CHILDREN: dict[tuple[object, tuple[str, ...]], Any] = {}


def child(metric: Counter | Histogram, *labels: str) -> Any:
    """`metric.labels(*labels)`, bound once per label values and then reused.

    Why: `.labels()` checks its arguments, builds its key and takes a lock on every call,
    and a decision made three such calls (its counter, its duration, the HTTP pair). The
    children are the library's own (a scrape sees the same series); label values are
    bounded as above, so this holds no more entries than the library does.
    """
    key = (metric, labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


def event_type_label(kind: object) -> str:
    """A bounded label for an event type: known types as they are, others ``custom``."""
    return kind if isinstance(kind, str) and kind in KNOWN_EVENT_TYPES else "custom"


def count_events(outcomes: Iterable[tuple[str, str]], lags_s: Sequence[float] = ()) -> None:
    """Count events by (type, status), and observe the lag of the accepted ones."""
    # Counted as they come, then labelled and added once per distinct (type, status): label
    # lookups and increments cost more than counting, and this runs for every event.
    grouped: CounterOf[tuple[str, str]] = CounterOf()
    for (kind, status), count in CounterOf(outcomes).items():
        grouped[event_type_label(kind), status] += count
    for (kind, status), count in grouped.items():
        EVENTS.labels(kind, status).inc(count)
    observe_many(EVENT_LAG, [lag if lag > 0.0 else 0.0 for lag in lags_s])


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe` of each amount, with one increment per bucket and one of the sum.

    Why: `observe` takes a lock per value and bucket it touches, and a batch of 1,000
    events observed its lags one by one (3% of an API process's CPU while ingesting).
    The counts are the ones `observe` would make (a value goes to the first bucket whose
    bound is >= it); the sum may differ in its last bits (added once, not value by
    value). Reads the library's bucket values; a version without them gets `observe`.
    """
    bounds: list[float] | None = getattr(histogram, "_upper_bounds", None)
    buckets: list[Any] | None = getattr(histogram, "_buckets", None)
    total: Any = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for amount in amounts:
            histogram.observe(amount)
        return
    if not amounts:
        return
    for index, count in CounterOf(map(bisect_left, repeat(bounds), amounts)).items():
        buckets[index].inc(count)
    total.inc(sum(amounts))


@dataclass(slots=True)
class SharedState:
    """What a scrape reads from the store (see the module docstring)."""

    rules: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    timers_pending: int = 0
    models: Sequence[Mapping[str, object]] = ()
    drift: Mapping[str, str] = field(default_factory=dict)
    drift_reference: str | None = None
    kpis: Mapping[tuple[str, str], str] = field(default_factory=dict)


def scrape_families(state: SharedState) -> list[Metric]:
    """The scrape-time metric families of `state` (gauges of cluster-wide values)."""
    rule_counts = GaugeMetricFamily(
        "relevo_rule_evaluations",
        "Rule evaluations, fires and errors since the store was created (all processes).",
        labels=["rule", "outcome"],
    )
    for rule, stats in sorted(state.rules.items()):
        for outcome in ("evaluations", "fires", "errors"):
            value = stats.get(outcome, 0)
            rule_counts.add_metric([rule, outcome], float(value if isinstance(value, int) else 0))
    timers = GaugeMetricFamily("relevo_timers_pending", "Rule timers armed and not yet fired.")
    timers.add_metric([], float(state.timers_pending))
    models = GaugeMetricFamily(
        "relevo_model_info",
        "Model versions: 1 for the active (promoted) version of each model, 0 for others.",
        labels=["model", "version", "kind"],
    )
    for meta in state.models:
        models.add_metric(
            [str(meta.get("name")), str(meta.get("version")), str(meta.get("kind", ""))],
            1.0 if meta.get("active") else 0.0,
        )
    drift = GaugeMetricFamily(
        "relevo_drift_status",
        "Drift status per monitored feature: 0 ok, 1 warn, 2 drift.",
        labels=["feature", "reference"],
    )
    for feature, status in sorted(state.drift.items()):
        drift.add_metric([feature, state.drift_reference or ""], float(STATUS_VALUE[status]))
    kpis = GaugeMetricFamily(
        "relevo_kpi_status",
        "KPI status per placement and KPI: 0 ok, 1 warn, 2 anomaly.",
        labels=["placement", "kpi"],
    )
    for (placement, kpi), status in sorted(state.kpis.items()):
        kpis.add_metric([placement, kpi], float(STATUS_VALUE.get(status, 0)))
    return [rule_counts, timers, models, drift, kpis]


class _Families:
    """A collector of ready-made families, for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def exposition(state: SharedState) -> bytes:
    """The text exposition of this process's (or, multiprocess, every process's) metrics
    followed by the shared state's gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        own = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        own = generate_latest(REGISTRY)
    shared = CollectorRegistry(auto_describe=False)
    shared.register(_Families(scrape_families(state)))
    return own + generate_latest(shared)


def latency_percentiles(
    quantiles: Sequence[float] = (0.5, 0.95, 0.99), limit: int = 8
) -> list[dict[str, object]]:
    """Request latency percentiles per route, from the histogram (this host's processes).

    Interpolated linearly inside the bucket where the quantile falls, as Prometheus's
    ``histogram_quantile`` does; the busiest `limit` routes first.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        families = [f for f in registry.collect() if f.name == HTTP_DURATION._name]
    else:
        families = list(HTTP_DURATION.collect())
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for family in families:
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                key = (sample.labels["method"], sample.labels["route"])
                buckets.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
    found: list[dict[str, object]] = []
    for (method, route), points in buckets.items():
        points.sort()
        total = points[-1][1] if points else 0.0
        if not total:
            continue
        entry: dict[str, object] = {"route": f"{method} {route}", "count": int(total)}
        for q in quantiles:
            entry[f"p{round(q * 100)}_ms"] = round(_quantile(points, q * total) * 1000, 3)
        found.append(entry)
    found.sort(key=lambda e: -int(e["count"]))  # type: ignore[call-overload]
    return found[:limit]


def _quantile(points: Sequence[tuple[float, float]], rank: float) -> float:
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in points:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # beyond the last finite bucket: report its bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
