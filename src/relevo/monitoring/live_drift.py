"""Live drift: tumbling windows of observed values, pooled across processes, compared
with the reference, one alert per drift episode.

How values travel:

1. every process buffers the values it observes (`Observations.add`), in memory;
2. every second or so (and after each applied batch) it appends the buffer to one
   store *stream* as one message (`Observations.flush`): API processes and workers on
   Redis pool their values. The stream is bounded in values, hence in bytes: a message
   carries at most `MESSAGE_VALUES` values per feature (a uniform sample of what the
   process observed since its last flush) and the stream keeps about `STREAM_VALUES`
   values per feature (`STREAM_KEPT` messages at most);
3. one process at a time (the monitoring lease) evaluates (`LiveDrift.evaluate`): it reads
   the stream from its saved cursor, appends each feature's values to that
   feature's pending window and, each time ``window_size`` values are there, compares
   that window with the reference (`relevo.monitoring.drift.DriftMonitor`: KS or
   chi-square, PSI, status ok/warn/drift, one alert per episode), then saves its
   state (cursor, pending values, per-feature results) in the store.

Windows are *tumbling* (consecutive, disjoint) and counted in values, not time:
each test then has the same power whatever the traffic, and a quiet site simply
evaluates less often. Alerts are written before the state: a crash in between
repeats the window, whose alert has the same id and is stored once.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from relevo.clock import Clock, to_iso
from relevo.monitoring.alerts import drift_alert
from relevo.monitoring.drift import (
    DriftMonitor,
    DriftThresholds,
    FeatureDrift,
    MonitorState,
    Status,
)
from relevo.monitoring.features import Value
from relevo.monitoring.references import ReferenceSet
from relevo.rules.engine import OutboxMessage
from relevo.store.base import Store

log = logging.getLogger(__name__)

OBSERVATIONS = "{monitoring}:observations"
"""A stream: its two keys (messages, seen ids) share a hash tag for Redis Cluster."""
STATE = "monitoring:drift:state"
DEDUPE_MS = 60_000
STREAM_KEPT = 5_000
"""Messages the stream keeps at most (small ones: single events, quiet traffic)."""
STREAM_VALUES = 5_000
"""Values per feature the stream keeps, about: each append trims the stream to
``STREAM_VALUES // (values per feature in that message)`` messages (at least one). A
fast ingestion (one message of `MESSAGE_VALUES` per applied batch) then keeps its last
5 messages, about 500 KB for the dozen monitored features at 8 bytes a value, where
the count alone kept 5,000 such messages (tens of MB, most of a Redis holding a few
thousand users). The evaluator reads every `RELEVO_MONITORING_EVERY`: messages
trimmed before it read them are skipped, and windows fill from the others (drift is
measured on a sample anyway). Mixed sizes stay bounded too: the k-th largest message
kept holds at most ``STREAM_VALUES / k`` values per feature."""
READ_PAGE = 500
MESSAGE_VALUES = 1_000
"""Values per feature one message carries at most (one default drift window), and one
process buffers between flushes: a uniform sample (reservoir) of the values observed
since the last flush, so a bulk batch is represented by all its events, not its
first ones."""


class FeatureResult(BaseModel):
    """The last window of one feature, as compared."""

    model_config = ConfigDict(extra="forbid")

    drift: FeatureDrift
    window: int
    evaluated_at: int


class DriftState(BaseModel):
    """What the evaluator keeps between rounds (JSON in the store)."""

    model_config = ConfigDict(extra="forbid")

    reference: str | None = None
    cursor: str | None = None
    pending: dict[str, list[Value]] = Field(default_factory=dict)
    windows: dict[str, int] = Field(default_factory=dict)
    monitor: MonitorState = Field(default_factory=MonitorState)
    results: dict[str, FeatureResult] = Field(default_factory=dict)
    evaluated_at: int | None = None
    alerts: int = 0


class Observations:
    """This process's buffer of observed values, flushed to the shared stream."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._buffer: dict[str, list[Value]] = {}
        self._seen: dict[str, int] = {}
        """Values observed per feature since the last flush (kept or not)."""
        self._generator = np.random.default_rng()
        self._random = random.Random()
        self._owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._sequence = 0
        self.dropped = 0

    def add(self, values: Mapping[str, Value]) -> None:
        """Add one observation's values (see `add_columns`)."""
        self.add_columns({name: (value,) for name, value in values.items()})

    def add_columns(self, columns: Mapping[str, Sequence[Value]]) -> None:
        """Add many values per feature at once, keeping per feature a uniform sample
        (a reservoir) of the values seen since the flush: each one kept with the same odds.

        A feature's buffer holds ``min(seen, MESSAGE_VALUES)`` values (`flush` keeps the
        two in step), so the count alone says how much room is left. What fits is
        appended in one ``extend``: a worker's batch of at most `MESSAGE_VALUES` events,
        after the flush of the one before, always fits. Values past the room replace
        some of those kept, all drawn at once (`_replace`).
        """
        buffer, counts = self._buffer, self._seen
        for name, values in columns.items():
            if not values:
                continue
            kept = buffer.get(name)
            if kept is None:
                kept = buffer[name] = []
            seen = counts.get(name, 0)
            room = max(MESSAGE_VALUES - seen, 0)
            kept.extend(values[:room])
            if len(values) > room:
                self._replace(kept, seen + room, values[room:])
            counts[name] = seen + len(values)

    def _replace(self, kept: list[Value], seen: int, values: Sequence[Value]) -> None:
        """Turn `kept`, a full reservoir (a uniform sample of the `seen` values so far),
        into a uniform sample of those and `values` together, in place.

        How many of `values` a uniform sample of all the positions holds is
        hypergeometric; which of `values` they are, and which slots of `kept` they take,
        are uniform without replacement. Drawn by numpy in a few calls, not one draw per
        value in Python (Algorithm R): a worker's batch larger than the reservoir has
        thousands of values past its room, and that loop was a few percent of the
        worker's CPU. (numpy's hypergeometric takes counts below 10**9: `seen` counts
        one flush interval, since a flush, failed or not, resets it.)
        """
        if len(values) == 1:
            # A decision's one score: Algorithm R's one draw, the same odds (~3 k
            # instructions, where the numpy calls below cost ~40 k, per decision).
            slot = self._random.randrange(seen + 1)
            if slot < MESSAGE_VALUES:
                kept[slot] = values[0]
            self.dropped += 1
            return
        generator = self._generator
        taken = int(generator.hypergeometric(len(values), seen, MESSAGE_VALUES))
        if taken:
            slots = generator.choice(MESSAGE_VALUES, taken, replace=False, shuffle=False)
            picks = generator.choice(len(values), taken, replace=False, shuffle=False)
            for slot, pick in zip(slots.tolist(), picks.tolist(), strict=True):
                kept[slot] = values[pick]
        self.dropped += len(values)

    @property
    def buffered(self) -> int:
        return sum(len(values) for values in self._buffer.values())

    async def flush(self) -> None:
        if not self._buffer:
            return
        buffer, self._buffer = self._buffer, {}
        self._seen = {}
        self._sequence += 1
        message_id = f"{self._owner}-{self._sequence}"
        most = max(len(values) for values in buffer.values())
        kept = max(1, min(STREAM_KEPT, STREAM_VALUES // max(most, 1)))
        try:
            await self.store.stream_add(
                OBSERVATIONS,
                [(message_id, orjson.dumps(buffer))],
                self.clock.now_ms(),
                DEDUPE_MS,
                kept,
            )
        except BaseException:  # keep them for the next flush, within the same bound
            newer = self._buffer
            self._buffer, self._seen = {}, {}
            for name, values in buffer.items():
                self._seen[name] = len(values)
                self._buffer[name] = values
            self.add_columns(newer)
            raise

    async def read(
        self, after: str | None, limit: int = READ_PAGE
    ) -> tuple[list[dict[str, list[Value]]], str | None]:
        entries = await self.store.stream_read(OBSERVATIONS, after, limit)
        return [orjson.loads(entry.body) for entry in entries], (
            entries[-1].position if entries else after
        )

    async def columns(self, limit_messages: int = STREAM_KEPT) -> dict[str, list[Value]]:
        """Every value the stream still holds, per feature (a baseline of recent traffic)."""
        columns: dict[str, list[Value]] = {}
        cursor: str | None = None
        read = 0
        while read < limit_messages:
            messages, cursor_after = await self.read(cursor)
            if not messages:
                break
            for message in messages:
                for name, values in message.items():
                    columns.setdefault(name, []).extend(values)
            read += len(messages)
            cursor = cursor_after
        return columns


class LiveDrift:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        observations: Observations,
        *,
        window_size: int = 1000,
        thresholds: DriftThresholds | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.observations = observations
        self.window_size = window_size
        self.thresholds = thresholds or DriftThresholds()
        self._loaded: DriftState | None = None

    async def state(self) -> DriftState:
        blob = await self.store.get(STATE)
        return DriftState() if blob is None else DriftState.model_validate_json(blob)

    async def evaluate(
        self, reference: ReferenceSet | None
    ) -> tuple[DriftState, list[OutboxMessage]]:
        """One round: new values read, full windows compared. Returns the new state and
        the alerts raised; the caller writes the alerts to the outbox, *then* saves the
        state (`save`). Callers hold the monitoring lease: one evaluator at a time."""
        return await self._evaluate(reference)

    async def _evaluate(
        self, reference: ReferenceSet | None
    ) -> tuple[DriftState, list[OutboxMessage]]:
        original = await self.state()
        state = original.model_copy(deep=True)
        reference_id = None if reference is None else reference.id
        if state.reference != reference_id:
            # A new reference: earlier windows and episodes belonged to the old one.
            state = DriftState(
                reference=reference_id,
                cursor=state.cursor,
                pending=state.pending,
            )
        # Without a reference nothing is monitored: values read are simply passed over.
        monitored = set(reference.profile.features) if reference is not None else set()
        while True:
            messages, cursor = await self.observations.read(state.cursor)
            if not messages:
                break
            state.cursor = cursor
            for message in messages:
                for name, values in message.items():
                    if name in monitored:
                        state.pending.setdefault(name, []).extend(values)
        now = self.clock.now_ms()
        alerts: list[OutboxMessage] = []
        if reference is not None:
            alerts = self._windows(reference, state, now)
        state.alerts += len(alerts)
        if state != original:
            state.evaluated_at = now
        self._loaded = original
        return state, alerts

    def _windows(self, reference: ReferenceSet, state: DriftState, now: int) -> list[OutboxMessage]:
        monitor = DriftMonitor(reference.profile, self.thresholds, state.monitor)
        alerts = []
        for name in sorted(state.pending):
            values = state.pending[name]
            while len(values) >= self.window_size:
                window, values = values[: self.window_size], values[self.window_size :]
                index = state.windows.get(name, 0)
                update = monitor.update({name: window})
                state.windows[name] = index + 1
                for found in update.report.features:
                    state.results[name] = FeatureResult(drift=found, window=index, evaluated_at=now)
                for alert in update.alerts:
                    alerts.append(
                        drift_alert(
                            reference.id,
                            alert.feature,
                            index,
                            {
                                "psi": alert.psi,
                                "p_value": alert.p_value,
                                "statistic": alert.statistic,
                            },
                            now,
                        )
                    )
            state.pending[name] = values
        state.monitor = monitor.state
        return alerts

    async def start_after_now(self, reference_id: str) -> None:
        """Windows of `reference_id` start with values observed from now on.

        Called when a baseline is captured: what was observed before is the baseline's
        own data (or older), and comparing it with itself would only mislead (profiles
        that grew during the baseline's period would read as drift).
        """
        cursor = (await self.state()).cursor
        while True:
            messages, after = await self.observations.read(cursor)
            if not messages:
                break
            cursor = after
        self._loaded = None
        await self.save(DriftState(reference=reference_id, cursor=cursor))

    async def save(self, state: DriftState) -> None:
        """Write the state, unless the round changed nothing (no new values, no new
        reference): a quiet system then writes nothing at all."""
        if state == self._loaded:
            return
        await self.store.set_many({STATE: state.model_dump_json().encode()})
        self._loaded = state.model_copy(deep=True)


def overall(statuses: Sequence[Status]) -> Status:
    order = {"ok": 0, "warn": 1, "drift": 2}
    return max(statuses, key=order.__getitem__, default="ok")


def public(state: DriftState, reference: ReferenceSet | None, window_size: int) -> dict[str, Any]:
    """The body of ``GET /v1/monitoring/drift``."""
    features = []
    known = set(reference.profile.features) if reference is not None else set()
    for name in sorted(known | set(state.results) | set(state.pending)):
        result = state.results.get(name)
        entry: dict[str, Any] = {
            "feature": name,
            "pending": len(state.pending.get(name, ())),
            "windows": state.windows.get(name, 0),
        }
        if result is not None:
            entry.update(result.drift.model_dump(exclude={"feature"}))
            entry["evaluated_at"] = to_iso(result.evaluated_at)
        else:
            entry["status"] = None
        features.append(entry)
    statuses: list[Status] = [r.drift.status for r in state.results.values()]
    return {
        "status": "no_reference" if reference is None else overall(statuses),
        "reference": None
        if reference is None
        else {
            "id": reference.id,
            "source": reference.source,
            "created_at": reference.created_at,
            "values": reference.values,
            "features": sorted(reference.profile.features),
        },
        "window_size": window_size,
        "evaluated_at": None if state.evaluated_at is None else to_iso(state.evaluated_at),
        "alerts": state.alerts,
        "features": features,
    }
