"""Forgetting idle users' dedupe marks, a bounded round at a time.

A profile write forgets its own marks past `RELEVO_DEDUPE_HORIZON`, but a user who
stops writing kept them until the profile expired (`RELEVO_RETENTION`, 90 days): on
Redis, where they live inside the profile document, about a fifth of an idle user's
bytes. Every `RELEVO_MARKS_SWEEP_EVERY` a pass walks the profiles with
`Store.sweep_marks` (on Redis a script per page of keys: nothing travels to Python)
and drops the marks recorded before now - horizon, never a younger one, so a retry
within the horizon is still recognized (see `relevo.store.redis_marks` for a
concurrent writer).

One process sweeps at a time (a lease). After each round the cursor and the pass's
totals are saved in the store, so a pass cut short (a process stopped or killed) is
continued by whichever process sweeps next; and a new pass starts at most once per
interval across all processes, as the store remembers when the last one finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson

from relevo.clock import Clock
from relevo.monitoring.metrics import MARKS_SWEPT_BYTES, MARKS_SWEPT_DOCUMENTS
from relevo.store import keys
from relevo.store.base import Store

log = logging.getLogger(__name__)

STATE = "marks:sweep"
"""The pass in progress (or the last one): cursor, totals, start and end."""
LEASE = "marks:sweep:lease"
LEASE_MS = 60_000
"""Held while sweeping, renewed every round: a process that dies frees it within a minute."""
KEYS_PER_ROUND = 5_000
"""10 pages of SCAN and scripts on Redis, each a few milliseconds of its time at most."""
CHECK_EVERY_S = 60.0
"""How often a process asks whether a pass is due (or one was left unfinished)."""


@dataclass(slots=True)
class SweepPass:
    """A pass of the sweep, as saved in the store after each round."""

    cursor: str = "0"
    running: bool = False
    started_ms: int = 0
    finished_ms: int = 0
    """When the last pass ended (0: never)."""
    rounds: int = 0
    documents: int = 0
    swept: int = 0
    freed_bytes: int = 0


class MarksSweeper:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        horizon_ms: int,
        every_ms: int,
        keys_per_round: int = KEYS_PER_ROUND,
    ) -> None:
        self.store = store
        self.clock = clock
        self.horizon_ms = horizon_ms
        self.every_ms = every_ms
        self.keys_per_round = keys_per_round
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"

    async def state(self) -> SweepPass:
        blob = await self.store.get(STATE)
        return SweepPass() if blob is None else SweepPass(**orjson.loads(blob))

    async def run(
        self, *, force: bool = False, stopping: Callable[[], bool] = lambda: False
    ) -> SweepPass | None:
        """Sweep until the pass ends: continue the one in progress, or start one if the
        last ended at least `every_ms` ago (`force`: now). None when there was nothing
        to do, another process holds the lease, or `stopping` said to stop between
        rounds (the cursor stays in the store for the next process)."""
        if not await self._due(force):
            return None
        if not await self.store.lease(LEASE, self.owner, LEASE_MS):
            return None
        try:
            state = await self.state()  # again, under the lease: another may just have ended
            if not state.running:
                if not force and self.clock.now_ms() - state.finished_ms < self.every_ms:
                    return None
                state = SweepPass(running=True, started_ms=self.clock.now_ms())
            return await self._rounds(state, stopping)
        finally:
            await self.store.release(LEASE, self.owner)

    async def _due(self, force: bool) -> bool:
        if force:
            return True
        state = await self.state()
        return state.running or self.clock.now_ms() - state.finished_ms >= self.every_ms

    async def _rounds(self, state: SweepPass, stopping: Callable[[], bool]) -> SweepPass | None:
        while True:
            found = await self.store.sweep_marks(
                keys.PROFILE_DOCUMENTS,
                state.cursor,
                self.clock.now_ms() - self.horizon_ms,
                self.keys_per_round,
            )
            MARKS_SWEPT_DOCUMENTS.inc(found.swept)
            MARKS_SWEPT_BYTES.inc(found.freed_bytes)
            state.cursor = found.cursor
            state.rounds += 1
            state.documents += found.documents
            state.swept += found.swept
            state.freed_bytes += found.freed_bytes
            if found.cursor == "0":
                state.running = False
                state.finished_ms = self.clock.now_ms()
                await self._save(state)
                log.info(
                    "marks sweep: %d profiles in %d rounds, %d lost expired marks, "
                    "%d bytes freed (%.1f s since the pass began)",
                    state.documents,
                    state.rounds,
                    state.swept,
                    state.freed_bytes,
                    (state.finished_ms - state.started_ms) / 1000,
                )
                return state
            await self._save(state)
            if stopping() or not await self.store.lease(LEASE, self.owner, LEASE_MS):
                return None

    async def _save(self, state: SweepPass) -> None:
        await self.store.set_many({STATE: orjson.dumps(asdict(state))})
