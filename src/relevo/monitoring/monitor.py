"""`Monitoring`: what the engine owns to watch itself.

It is told about traffic by the engine (`ingested`, `decided`), about applied
events as an `ApplyHook` (`observe`, `events_applied`) and about credited outcomes
by the exposures (`credited`). It counts process metrics at once, buffers what
must be pooled across processes (observed values, KPI counts, decision rates) and
flushes them every second; every `RELEVO_MONITORING_EVERY` one process (a store
lease) evaluates drift and KPIs and turns new episodes into outbox actions.

The hot path appends to in-memory lists and bumps counters; the only store call it
makes for monitoring is one stream append per applied *batch* of events (never per
event, never per decision).
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relevo.clock import Clock
from relevo.config import Settings
from relevo.errors import InvalidInput, RelevoError, Unavailable
from relevo.features.profile import FeatureParams, ProfileState
from relevo.live.attributes import CatalogChange
from relevo.models.registry import ModelRegistry
from relevo.monitoring import metrics, references
from relevo.monitoring.features import (
    NOT_OBSERVED,
    SCORE_PREFIX,
    Snapshot,
    observed_columns,
    replay_features,
    snapshot,
)
from relevo.monitoring.kpis import KpiCounters, Kpis
from relevo.monitoring.live_drift import LiveDrift, Observations, public
from relevo.monitoring.references import ReferenceSet
from relevo.rules.outbox import Outbox
from relevo.rules.stats import RuleStatsRecorder
from relevo.store import keys
from relevo.store.base import Store

log = logging.getLogger(__name__)

LEASE = "monitoring:lease"
LEASE_MS = 60_000
BASELINE = "monitoring:baseline"
RATE_BUCKET_MS = 60_000
RATE_KEPT_MS = 25 * 3_600_000
DECISION_RATE = "monitoring:rate:decisions"
FALLBACK_RATE = "monitoring:rate:fallbacks"

SAMPLE_ALL = 10_000
"""`RELEVO_DRIFT_SAMPLE` in ten-thousandths: 1.0, every event (no hash needed)."""

Retrain = Callable[[], Awaitable[Any]]


class Monitoring:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        outbox: Outbox,
        models: ModelRegistry,
        rule_stats: RuleStatsRecorder,
        params: FeatureParams,
        retrain: Retrain | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.outbox = outbox
        self.models = models
        self.rule_stats = rule_stats
        self.params = params
        self.retrain = retrain
        self.observations = Observations(store, clock)
        self.drift = LiveDrift(store, clock, self.observations, window_size=settings.drift_window)
        self.kpi_counters = KpiCounters(store)
        self.kpis = Kpis(store, clock)
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._sample = round(settings.drift_sample * SAMPLE_ALL)
        self._rates: Counter[tuple[str, int]] = Counter()
        self._model_reference: tuple[str, ReferenceSet | None] | None = None
        self._baseline: tuple[bytes, ReferenceSet] | None = None
        self._retraining: asyncio.Task[Any] | None = None

    # -- told by the engine ---------------------------------------------------------------
    def ingested(
        self,
        raws: Sequence[Any],
        records: Sequence[dict[str, Any] | None],
        statuses: Sequence[str],
        received_ms: int,
    ) -> None:
        """Count a request's events by type and outcome; the lag of the accepted ones."""
        # Comprehensions, not one loop appending to two lists: this runs for every event
        # ingested (a record's timestamp is always an int: see `relevo.events`).
        kinds = [
            _raw_type(raw) if record is None else record["type"]
            for raw, record in zip(raws, records, strict=False)
        ]
        lags = [
            (received_ms - record["timestamp"]) / 1000
            for record, status in zip(records, statuses, strict=False)
            if status == "accepted" and record is not None
        ]
        metrics.count_events(zip(kinds, statuses, strict=False), lags)

    def rejected(self, raws: Sequence[Any]) -> None:
        metrics.count_events((_raw_type(raw), "rejected") for raw in raws)

    def decided(self, decision: dict[str, Any], elapsed_s: float, at_ms: int) -> None:
        """Count a decision; observe its top score; count the exposure for its KPIs."""
        placement = decision["placement"]
        fallback = bool(decision["fallback"])
        label = "true" if fallback else "false"
        metrics.child(metrics.DECISIONS, placement, decision["policy"], label).inc()
        metrics.child(metrics.DECISION_DURATION, placement).observe(elapsed_s)
        minute = at_ms - at_ms % RATE_BUCKET_MS
        self._rates[(DECISION_RATE, minute)] += 1
        if fallback:
            self._rates[(FALLBACK_RATE, minute)] += 1
            return
        self.kpi_counters.add(placement, at_ms, "exposures")
        items = decision.get("items") or ()
        if items and isinstance(items[0].get("score"), int | float):
            self.observations.add({SCORE_PREFIX + placement: float(items[0]["score"])})

    def credited(self, placement: str, decided_at_ms: int, outcome: str) -> None:
        """A decision's first click or purchase (told by `Exposures`)."""
        self.kpi_counters.add(
            placement, decided_at_ms, "clicks" if outcome == "click" else "conversions"
        )

    # -- as an ApplyHook -------------------------------------------------------------------
    def observe(self, state: ProfileState, record: dict[str, Any]) -> Snapshot | None:
        """The profile numbers this event's features need (`snapshot`): the features
        themselves are computed for the whole batch at once, in `events_applied`."""
        # `observed` and the "everything sampled" case (the default) spelled out: this
        # runs for every event applied, where a call costs more than its check
        if record.get("type") in NOT_OBSERVED or (
            self._sample < SAMPLE_ALL and not self._sampled(record["event_id"])
        ):
            return None
        return snapshot(state)

    async def events_applied(self, noted: Sequence[tuple[dict[str, Any], Any]]) -> None:
        """Hand the batch's observed values to the shared stream now (one append per
        applied batch): the values are pooled by the time the events are, and the store
        never changes later, on a timer, because of an earlier request."""
        records, snapshots = _observed(noted)
        self.observations.add_columns(observed_columns(records, snapshots))
        try:
            await self.observations.flush()
        except RelevoError as error:  # kept in the buffer; the background flush retries
            log.warning("observed values not flushed yet: %s", error.message)

    async def items_upserting(self, change: CatalogChange) -> None:
        return None

    async def items_applied(self, change: CatalogChange, generation: int) -> None:
        return None

    def _sampled(self, event_id: str) -> bool:
        # By event id, so a replay observes the same events and every process agrees.
        return zlib.crc32(event_id.encode()) % SAMPLE_ALL < self._sample

    # -- pooled state ----------------------------------------------------------------------
    async def flush(self) -> None:
        """Hand this process's buffered values and counts to the store."""
        rates, self._rates = self._rates, Counter()
        if rates:
            await self.store.periodic_add(
                [(key, minute, count) for (key, minute), count in rates.items()],
                RATE_BUCKET_MS,
                RATE_KEPT_MS,
            )
        await self.kpi_counters.flush()
        await self.observations.flush()

    async def reference(self) -> ReferenceSet | None:
        """The served model's references when it has some, else the stored baseline."""
        served = self.models.served(self.settings.serving_model)
        if served is not None:
            reference_id = f"{served.name}:{served.version}"
            if self._model_reference is None or self._model_reference[0] != reference_id:
                folder = self.models.folder(served.name, served.version)
                loaded = await asyncio.to_thread(references.load, folder)
                self._model_reference = (reference_id, loaded)
            if self._model_reference[1] is not None:
                return self._model_reference[1]
        blob = await self.store.get(BASELINE)
        if blob is None:
            return None
        if self._baseline is None or self._baseline[0] != blob:
            self._baseline = (blob, ReferenceSet.model_validate_json(blob))
        return self._baseline[1]

    async def evaluate(self) -> dict[str, Any]:
        """One monitoring round (skipped when another process holds the lease)."""
        await self.flush()
        if not await self.store.lease(LEASE, self.owner, LEASE_MS):
            return {"evaluated": False, "reason": "another process is evaluating"}
        try:
            reference = await self.reference()
            state, drift_alerts = await self.drift.evaluate(reference)
            _, kpi_alerts = await self.kpis.evaluate()
            # Alerts first: a crash before the state is saved repeats them (same ids).
            await self.outbox.add([*drift_alerts, *kpi_alerts])
            await self.drift.save(state)
        finally:
            await self.store.release(LEASE, self.owner)
        for alert in drift_alerts:
            log.warning("drift detected: %s", alert.message_id)
        for alert in kpi_alerts:
            log.warning("KPI anomaly: %s", alert.message_id)
        if drift_alerts and self.settings.retrain_on_drift:
            self._start_retraining()
        return {
            "evaluated": True,
            "drift_alerts": [alert.message_id for alert in drift_alerts],
            "kpi_alerts": [alert.message_id for alert in kpi_alerts],
        }

    def _start_retraining(self) -> None:
        if self.retrain is None:
            log.warning("drift: RELEVO_RETRAIN_ON_DRIFT is set but no trainer is available")
            return
        if self._retraining is not None and not self._retraining.done():
            return  # one retraining at a time

        async def run() -> None:
            assert self.retrain is not None
            try:
                await self.retrain()
            except Exception:
                log.exception("retraining after drift failed")

        log.warning("drift: retraining the served models (RELEVO_RETRAIN_ON_DRIFT)")
        self._retraining = asyncio.create_task(run(), name="relevo-retrain-on-drift")

    async def close(self) -> None:
        if self._retraining is not None and not self._retraining.done():
            self._retraining.cancel()
            await asyncio.gather(self._retraining, return_exceptions=True)

    # -- reports ---------------------------------------------------------------------------
    async def drift_report(self) -> dict[str, Any]:
        reference = await self.reference()
        state = await self.drift.state()
        if state.reference != (None if reference is None else reference.id):
            state = type(state)()  # not evaluated against this reference yet
        return public(state, reference, self.drift.window_size)

    async def kpi_report(self) -> dict[str, Any]:
        return await self.kpis.report()

    async def capture_baseline(
        self, source: str, archive_events: Sequence[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Capture and store a baseline from archived records or the observed stream."""
        now = self.clock.now_ms()
        if source == "archive":
            columns = await asyncio.to_thread(replay_features, archive_events or [], self.params)
        else:
            await self.flush()
            columns = await self.observations.columns()
        captured = references.capture(
            columns, reference_id=f"baseline:{now}", source="baseline", now_ms=now
        )
        if not captured.profile.features:
            raise InvalidInput(
                f"not enough values in the {source} to capture a baseline "
                f"(each feature needs {references.MIN_VALUES})",
                field="source",
                code="not_enough_data",
            )
        await self.flush()
        if await self.store.lease(LEASE, self.owner, LEASE_MS):
            try:
                await self.store.set_many({BASELINE: captured.model_dump_json().encode()})
                await self.drift.start_after_now(captured.id)
            finally:
                await self.store.release(LEASE, self.owner)
        else:
            raise Unavailable("drift is being evaluated by another process; try again shortly")
        return {
            "id": captured.id,
            "source": source,
            "values": captured.values,
            "features": sorted(captured.profile.features),
        }

    async def shared_state(self) -> metrics.SharedState:
        """What `/metrics` reads from the store (see `relevo.monitoring.metrics`)."""
        drift = await self.drift.state()
        kpis = await self.kpis.report()
        listing = await self.models.listing(await self.models.names())
        return metrics.SharedState(
            rules=await self.rule_stats.read(),
            timers_pending=await self.store.zcard(keys.TIMERS_DUE),
            models=[meta for entry in listing for meta in entry.get("versions", ())],
            drift={name: r.drift.status for name, r in drift.results.items()},
            drift_reference=drift.reference,
            kpis={(k["placement"], k["kpi"]): k["status"] for k in kpis["kpis"]},
        )


def _observed(
    noted: Sequence[tuple[dict[str, Any], Snapshot | None]],
) -> tuple[Sequence[dict[str, Any]], Sequence[Snapshot]]:
    """The events observed (those with a snapshot: see `Monitoring.observe`) and their
    snapshots, as two columns made in C (`zip`); filtered only when some are not."""
    if not noted:
        return (), ()
    records, snapshots = zip(*noted, strict=True)
    if None in snapshots:
        kept = [pair for pair in noted if pair[1] is not None]
        records, snapshots = zip(*kept, strict=True) if kept else ((), ())
    return records, snapshots


def _raw_type(raw: Any) -> str:
    """The type label of an event that may not be valid (anything unknown: ``custom``)."""
    return metrics.event_type_label(raw.get("type") if isinstance(raw, dict) else None)
