"""Group commit: one task turns concurrent requests into few durable writes.

Requests put their validated records on a queue and wait. The committer takes
everything queued (up to a bound), and for the whole group:

1. finds which events the profiles already absorbed (duplicates; in worker mode only
   repeats within the group: the workers skip what a profile absorbed),
2. appends the new records to the event log in one durable write,
3. applies them (catalog, profiles, aggregates),
4. tells the log they are applied, and answers every waiting request.

One writer per process keeps the log and the state in the same order, makes
embedded snapshots consistent, and turns N small fsyncs into one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from relevo.apply import PROFILE_KINDS, Applier, ProfileDoc
from relevo.eventlog.base import LogRecord, RecordKind
from relevo.events import profile_key

MAX_GROUP_RECORDS = 50_000
T = TypeVar("T")


@dataclass(slots=True)
class Entry:
    kind: RecordKind
    record: dict[str, Any]


@dataclass(slots=True)
class _Job:
    entries: Sequence[Entry]
    done: asyncio.Future[list[bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Committer:
    def __init__(
        self,
        applier: Applier,
        append: Callable[[Sequence[LogRecord]], Awaitable[list[str]]],
        applied: Callable[[Sequence[str]], Awaitable[None]],
        *,
        apply_profiles: bool = True,
    ) -> None:
        self._applier = applier
        self._append = append
        self._applied = applied
        self.apply_profiles = apply_profiles
        """False when workers apply events (``RELEVO_APPLY=worker``): this process only logs."""
        self.waiting = 0
        """Entries submitted and not yet answered (a measure of the backlog)."""
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._committing = asyncio.Lock()

    async def exclusive(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` between two commit groups: nothing is half-applied meanwhile."""
        async with self._committing:
            return await work()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relevo-committer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=30)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def submit(self, entries: Sequence[Entry]) -> list[bool]:
        """Commit entries; for each, True if new, False if a duplicate event."""
        if not entries:
            return []
        if self._task is None:
            raise RuntimeError("the committer is not running")
        job = _Job(entries)
        self.waiting += len(entries)
        try:
            await self._queue.put(job)
            return await job.done
        finally:
            self.waiting -= len(entries)

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            jobs = [first]
            size = len(first.entries)
            while size < MAX_GROUP_RECORDS and not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
                size += len(job.entries)
            try:
                async with self._committing:
                    outcome = await self._commit([e for job in jobs for e in job.entries])
            except asyncio.CancelledError:
                for job in jobs:
                    job.done.cancel()
                raise
            except Exception as error:
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(error)
                continue
            start = 0
            for job in jobs:
                if not job.done.done():
                    job.done.set_result(outcome[start : start + len(job.entries)])
                start += len(job.entries)

    async def _commit(self, entries: list[Entry]) -> list[bool]:
        # Only a process that applies reads the profiles first: to apply, and so to know
        # which events they already absorbed. In worker mode the worker makes that check
        # when it applies (the profile's marks), so reading here only to report a resent
        # event as a duplicate cost a round trip per group and a quarter of the API's CPU
        # (bench.load); such an event is logged again and the worker skips it.
        docs: dict[str, ProfileDoc] = {}
        if self.apply_profiles:
            docs = await self._applier.read(
                [entry.record for entry in entries if entry.kind in PROFILE_KINDS]
            )
        # One pass: each entry's key and body are computed once, for the new ones only.
        new: list[bool] = []
        fresh: list[Entry] = []
        logged: list[LogRecord] = []
        taken: set[str] = set()
        for entry in entries:
            record = entry.record
            if entry.kind in PROFILE_KINDS:
                key = profile_key(record)
                event_id = record["event_id"]
                doc = docs.get(key)
                if event_id in taken or (doc is not None and event_id in doc.absorbed):
                    new.append(False)
                    continue
                taken.add(event_id)
            else:
                key = str(record.get("item_id") or record.get("of"))
            new.append(True)
            fresh.append(entry)
            logged.append(LogRecord(entry.kind, key, orjson.dumps(record)))
        positions = await self._append(logged)
        if self.apply_profiles:
            await self._applier.apply([(entry.kind, entry.record) for entry in fresh], docs)
            await self._applied(positions)
        else:  # workers apply events; configuration and the catalog take effect here at once
            await self._applier.apply(
                [(e.kind, e.record) for e in fresh if e.kind not in PROFILE_KINDS]
            )
        return new
