"""`relevo worker`: apply logged events, partition by partition, alongside other workers.

With ``RELEVO_APPLY=worker`` the API processes only log what they accept; workers
apply it (profiles, rules, timers, live models, attribution). The log is split in
partitions (a user's records stay in one, in order); each worker holds a fair
share of them through store leases (renewed every second, 10 s to expire), so a
worker that dies hands its partitions over within seconds, and a new worker takes
its share. On taking a partition, a worker first claims whatever its previous
owner read but never acknowledged: application is idempotent, so nothing is lost
and nothing counts twice. A record that fails `max_deliveries` times is parked in
the partition's dead-letter stream with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
from collections.abc import Sequence

import orjson

from relevo.backends import RedisBackend
from relevo.engine import Engine
from relevo.errors import ConfigurationError, RelevoError
from relevo.eventlog.base import LogRecord

log = logging.getLogger(__name__)

LEASE_MS = 10_000
ALIVE = "workers:alive"


class Worker:
    def __init__(
        self,
        engine: Engine,
        *,
        batch: int = 1_000,
        block_ms: int = 50,
        max_deliveries: int = 5,
        retry_idle_ms: int = 5_000,
        lease_ms: int = LEASE_MS,
        linger_ms: int = 0,
    ) -> None:
        if not isinstance(engine.backend, RedisBackend) or engine.settings.apply != "worker":
            raise ConfigurationError(
                "relevo worker needs RELEVO_STORE=redis://... and RELEVO_APPLY=worker"
            )
        self.engine = engine
        self.log = engine.backend.stream
        self.store = engine.store
        self.name = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.batch = batch
        self.block_ms = block_ms
        self.max_deliveries = max_deliveries
        self.retry_idle_ms = retry_idle_ms
        self.lease_ms = lease_ms
        self.linger_ms = linger_ms
        self.owned: set[int] = set()
        self._to_claim: set[int] = set()  # partitions taken whose backlog must be claimed
        self.applied = 0
        self._balanced_at = -math.inf

    async def run(self, stop: asyncio.Event) -> None:
        """Apply until `stop` is set; then hand the partitions back."""
        try:
            while not stop.is_set():
                await self.step()
        finally:
            await self.release()

    async def step(self) -> int:
        """One round: keep a fair share of partitions, then apply what they hold."""
        now = self.engine.clock.now_ms()
        records: list[LogRecord] = []
        if now - self._balanced_at >= min(1_000, self.lease_ms // 3):
            self._balanced_at = now
            await self.rebalance()
            for partition in await self.log.stalled(sorted(self.owned), self.retry_idle_ms):
                records += await self._retry_stalled(partition)
        for partition in sorted(self._to_claim & self.owned):
            records += await self.log.take_over(partition, self.name, self.batch)
        self._to_claim.clear()
        if not records:
            records = await self.log.read_new(
                sorted(self.owned), self.name, self.batch, self.block_ms
            )
            if records and len(records) < self.batch and self.linger_ms > 0:
                records += await self._lingered(len(records))
        if not self.owned:
            await asyncio.sleep(self.block_ms / 1000)  # nothing to own: another worker has it all
        if records:
            await self.apply(records)
        return len(records)

    async def _lingered(self, have: int) -> list[LogRecord]:
        """What arrived within `linger_ms` after a read that brought `have` records, fewer
        than a batch: a batch's fixed cost (a dozen round trips, ~1.5 ms of CPU) is then
        shared by more events when traffic is light (bench.load's mixed traffic brought
        a worker 1 to 5 events a read). Read after the earlier ones, so each
        partition's records stay in order."""
        await asyncio.sleep(self.linger_ms / 1000)
        return await self.log.read_new(sorted(self.owned), self.name, self.batch - have, None)

    async def rebalance(self) -> list[int]:
        """Renew this worker's leases, take free partitions up to a fair share, give back
        the extras; return the partitions just taken."""
        now = self.engine.clock.now_ms()
        await self.store.zadd(ALIVE, {self.name: now})
        alive = await self.store.zrange_by_score(ALIVE, now - self.lease_ms, float("inf"))
        stale = await self.store.zrange_by_score(ALIVE, float("-inf"), now - self.lease_ms)
        if stale:
            await self.store.zrem(ALIVE, [name for name, _ in stale])
        share = math.ceil(self.log.partitions / max(1, len(alive)))
        for partition in sorted(self.owned):
            if len(self.owned) > share:
                await self.store.release(_lease(partition), self.name)
                self.owned.discard(partition)
            elif not await self.store.lease(_lease(partition), self.name, self.lease_ms):
                self.owned.discard(partition)  # lost it (paused too long): someone else has it
        taken = []
        for partition in range(self.log.partitions):
            if len(self.owned) >= share:
                break
            if partition not in self.owned and await self.store.lease(
                _lease(partition), self.name, self.lease_ms
            ):
                self.owned.add(partition)
                taken.append(partition)
        self._to_claim.update(taken)
        return taken

    async def _retry_stalled(self, partition: int) -> list[LogRecord]:
        """Records this worker read but could not apply, once they have rested a while."""
        return await self.log.reclaim(partition, self.name, self.retry_idle_ms, self.batch)

    async def apply(self, records: Sequence[LogRecord]) -> None:
        """Apply a batch; on failure, one by one, parking records that keep failing."""
        try:
            await self.engine.apply_records(records)
        except RelevoError:
            raise  # the store is unavailable: leave everything pending, retry later
        except Exception:
            log.exception("a batch of %d records failed; applying them one by one", len(records))
            await self._one_by_one(records)
            return
        await self.log.acknowledge(records)
        self.applied += len(records)

    async def _one_by_one(self, records: Sequence[LogRecord]) -> None:
        for record in records:
            try:
                orjson.loads(record.body)
                await self.engine.apply_records([record])
            except RelevoError:
                raise
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                if await self.log.deliveries(record) >= self.max_deliveries:
                    log.error(
                        "parking %s after %d deliveries: %s",
                        record.position,
                        self.max_deliveries,
                        reason,
                    )
                    await self.log.dead_letter(record, reason)
                continue
            await self.log.acknowledge([record])
            self.applied += 1

    async def release(self) -> None:
        for partition in self.owned:
            await self.store.release(_lease(partition), self.name)
        self.owned.clear()
        await self.store.zrem(ALIVE, [self.name])


def _lease(partition: int) -> str:
    return f"workers:partition:{partition}"
