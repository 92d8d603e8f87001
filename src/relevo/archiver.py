"""Moves log records into the Parquet archive, in the background."""

from __future__ import annotations

import asyncio
import logging

from relevo.eventlog.archive import ArchiveWriter
from relevo.eventlog.base import EventLog

log = logging.getLogger(__name__)

ARCHIVE_BATCH = 50_000


class Archiver:
    def __init__(self, event_log: EventLog, writer: ArchiveWriter) -> None:
        self.log = event_log
        self.writer = writer
        self.lock = asyncio.Lock()
        """Held while writing; erasure takes it so no file is half-written meanwhile."""

    async def flush(self) -> int:
        """Archive everything the log holds now; return how many records were written."""
        written = 0
        async with self.lock:
            while records := await self.log.archive_batch(ARCHIVE_BATCH):
                await asyncio.to_thread(self.writer.write, records)
                await self.log.archive_done(records)
                written += len(records)
        return written
