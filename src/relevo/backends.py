"""The two ways to run: embedded (one process) and Redis (shared state, many processes).

A backend owns a store and an event log and knows how to make them consistent
after a crash:

- **Embedded**: state lives in memory; the log is SQLite. On start, the newest
  snapshot is loaded and the log after its position is replayed. Snapshots are
  taken periodically and at shutdown; the log is then trimmed below what is both
  snapshotted and archived. A lock file keeps a second process off the data dir.
- **Redis**: state lives in Redis; the log is a Redis Stream. Records appended but
  not yet applied stay in an in-flight set; on start, and periodically for records
  older than a grace period, they are applied again (idempotently).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Protocol

from relevo.clock import Clock
from relevo.config import Settings
from relevo.errors import ConfigurationError
from relevo.eventlog import snapshot
from relevo.eventlog.base import EventLog, LogRecord
from relevo.eventlog.local import LocalLog
from relevo.eventlog.redis_stream import RedisStreamLog
from relevo.store.base import Store
from relevo.store.memory import MemoryStore
from relevo.store.redis import RedisStore

log = logging.getLogger(__name__)

Apply = Callable[[Sequence[LogRecord]], Awaitable[None]]
Ready = Callable[[], Awaitable[None]]
REPLAY_BATCH = 5_000
IN_FLIGHT_GRACE_MS = 30_000


class Backend(Protocol):
    store: Store
    log: EventLog
    maintenance_every_s: float

    async def open(self, apply: Apply, restored: Ready) -> None:
        """Connect, and bring state up to date with the log (crash recovery).

        `restored` runs once stored state is readable and before the log is replayed.
        """
        ...

    async def append(self, records: Sequence[LogRecord]) -> list[str]: ...

    async def applied(self, positions: Sequence[str]) -> None: ...

    async def maintain(self, apply: Apply) -> None:
        """Periodic housekeeping (snapshots, recovery of stalled records)."""
        ...

    async def backlog(self) -> int:
        """Records logged but not yet applied (0 when the committer applies everything)."""
        ...

    async def erase_user(self, user_id: str) -> int:
        """Delete the user's records from the log (and from any snapshot of the state)."""
        ...

    async def close(self) -> None: ...


class EmbeddedBackend:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.data_dir = settings.data_dir
        self.memory = MemoryStore(clock)
        self.store: Store = self.memory
        self.local_log = LocalLog(settings.data_dir)
        self.log: EventLog = self.local_log
        self.snapshot_path = settings.data_dir / "snapshot.pickle"
        self.maintenance_every_s = settings.snapshot_every / 1000
        self._position = 0
        self._snapshotted = 0
        self._lock: IO[str] | None = None

    async def open(self, apply: Apply, restored: Ready) -> None:
        self._lock = _lock(self.data_dir)
        await self.local_log.open()
        self._position = self._snapshotted = snapshot.load(self.snapshot_path, self.memory)
        await restored()
        replayed = 0
        while records := await self.local_log.read_after(self._position, REPLAY_BATCH):
            await apply(records)
            self._position = int(records[-1].position)
            replayed += len(records)
        if replayed:
            log.info("replayed %d log records after the snapshot", replayed)

    async def append(self, records: Sequence[LogRecord]) -> list[str]:
        return await self.local_log.append(records)

    async def applied(self, positions: Sequence[str]) -> None:
        if positions:
            self._position = max(self._position, int(positions[-1]))

    async def maintain(self, apply: Apply) -> None:
        self.memory.purge_expired()
        await self.checkpoint()

    async def backlog(self) -> int:
        return 0

    async def erase_user(self, user_id: str) -> int:
        """Delete the user's log records, then snapshot, so the old snapshot (which may
        still hold the user's profile) is replaced. Call it after the store erasers."""
        removed = await self.local_log.erase(user_id)
        await self.checkpoint(force=True)
        return removed

    async def checkpoint(self, *, force: bool = False) -> None:
        """Snapshot the state if it moved, then forget log records no longer needed."""
        if self._position == self._snapshotted and not force:
            return
        position = self._position
        snapshot.save(self.snapshot_path, self.memory, position)
        self._snapshotted = position
        archived = await self.local_log.cursor("archive")
        await self.local_log.forget_through(min(position, archived))

    async def close(self) -> None:
        try:
            await self.checkpoint()
            await self.local_log.close()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None


def _lock(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "LOCK", "a+")  # noqa: SIM115 - held open for the process' life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise ConfigurationError(
            f"{data_dir} is in use by {owner}; stop it, use another RELEVO_DATA_DIR, "
            "or send the data to the running server (relevo import --url ...)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"relevo pid {os.getpid()}")
    handle.flush()
    return handle


class RedisBackend:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.redis = RedisStore(settings.store, settings.redis_prefix)
        self.store: Store = self.redis
        self.stream = RedisStreamLog(
            self.redis, settings.log_partitions, workers=settings.apply == "worker"
        )
        self.log: EventLog = self.stream
        self.clock = clock
        self.maintenance_every_s = 5.0

    async def open(self, apply: Apply, restored: Ready) -> None:
        await self.redis.ping()
        await self.stream.open()
        await restored()
        await self._recover(apply, arrived_before_ms=float("inf"))

    async def _recover(self, apply: Apply, arrived_before_ms: float) -> None:
        while records := await self.stream.in_flight(arrived_before_ms, REPLAY_BATCH):
            await apply(records)
            await self.stream.applied([record.position for record in records])
            log.info("recovered %d in-flight log records", len(records))

    async def append(self, records: Sequence[LogRecord]) -> list[str]:
        return await self.stream.append(records, now_ms=self.clock.now_ms())

    async def applied(self, positions: Sequence[str]) -> None:
        await self.stream.applied(positions)

    async def maintain(self, apply: Apply) -> None:
        await self._recover(apply, arrived_before_ms=self.clock.now_ms() - IN_FLIGHT_GRACE_MS)

    async def backlog(self) -> int:
        return await self.stream.lag()

    async def erase_user(self, user_id: str) -> int:
        return await self.stream.erase(user_id)

    async def close(self) -> None:
        await self.redis.close()


def open_backend(settings: Settings, clock: Clock) -> Backend:
    if settings.is_redis:
        return RedisBackend(settings, clock)
    if settings.store != "embedded":
        raise ConfigurationError(
            f"RELEVO_STORE={settings.store!r}: use 'embedded' or a redis:// URL"
        )
    if settings.apply == "worker":
        raise ConfigurationError("RELEVO_APPLY=worker needs Redis (RELEVO_STORE=redis://...)")
    return EmbeddedBackend(settings, clock)
