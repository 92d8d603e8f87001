"""The embedded event log: an append-only SQLite table in WAL mode.

Appends from concurrent requests are grouped by the caller into one transaction
(group commit); ``synchronous=FULL`` makes SQLite fsync the WAL at every commit,
so a record is on disk before it is acknowledged. All SQLite work runs on one
dedicated thread, so the event loop never blocks on the disk.

Positions are the table's sequence numbers as strings. Cursors (how far the
archiver got) live in the same database, so they are as durable as the log.
Records that are both archived and covered by a snapshot are deleted.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from relevo.errors import Unavailable
from relevo.eventlog.base import LogRecord, RecordKind

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


class LocalLog:
    """SQLite-backed log in `directory/log.sqlite3`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "log.sqlite3"
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relevo-log")
        self._db: sqlite3.Connection | None = None
        self._next_seq = 1

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def open(self) -> None:
        def connect() -> None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # erased rows are overwritten with zeros, not left in free pages
            db.execute("PRAGMA secure_delete=ON")
            db.executescript(_SCHEMA)
            self._db = db
            (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()
            (archived,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM cursors WHERE name = 'archive'"
            ).fetchone()
            self._next_seq = max(last, archived) + 1

        await self._run(connect)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise Unavailable("the event log is not open")
        return self._db

    async def append(self, records: Sequence[LogRecord]) -> list[str]:
        if not records:
            return []
        first = self._next_seq
        self._next_seq += len(records)
        rows = [(first + i, r.kind, r.key, r.body) for i, r in enumerate(records)]

        def write() -> None:
            try:
                with self._transaction():  # one transaction: one fsync for the whole group
                    self.db.executemany("INSERT INTO log VALUES (?, ?, ?, ?)", rows)
            except sqlite3.Error as error:
                raise Unavailable(f"the event log can't be written: {error}") from error

        try:
            await self._run(write)
        except BaseException:
            self._next_seq = first  # nothing was written; reuse the numbers
            raise
        return [str(first + i) for i in range(len(records))]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """An explicit transaction (the connection is in autocommit mode otherwise)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    async def read_after(self, position: int, limit: int) -> list[LogRecord]:
        """Records after sequence number `position`, in order (for replays)."""

        def read() -> list[LogRecord]:
            rows = self.db.execute(
                "SELECT seq, kind, key, body FROM log WHERE seq > ? ORDER BY seq LIMIT ?",
                (position, limit),
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(read)

    async def check(self) -> None:
        def probe() -> None:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("ROLLBACK")
            except sqlite3.Error as error:
                raise Unavailable(f"the event log can't take writes: {error}") from error

        await self._run(probe)

    async def cursor(self, name: str) -> int:
        def read() -> int:
            row = self.db.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(read)

    async def archive_batch(self, limit: int) -> list[LogRecord]:
        return await self.read_after(await self.cursor("archive"), limit)

    async def archive_done(self, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        last = max(int(record.position) for record in records)

        def write() -> None:
            with self._transaction():
                self.db.execute(
                    "INSERT INTO cursors VALUES ('archive', ?) "
                    "ON CONFLICT(name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                    (last,),
                )

        await self._run(write)

    async def forget_through(self, position: int) -> int:
        """Delete records up to `position` (archived and covered by a snapshot)."""

        def delete() -> int:
            with self._transaction():
                return self.db.execute("DELETE FROM log WHERE seq <= ?", (position,)).rowcount

        return await self._run(delete)

    async def erase(self, user_id: str) -> int:
        """Delete the user's event records; leave no copy in free pages or the WAL.

        The log holds only records not yet snapshotted and archived, so this scan is
        short. With ``secure_delete`` the freed cells are zeroed, and a truncating
        checkpoint empties the WAL that held the rows' earlier images.
        """

        def delete() -> int:
            with self._transaction():
                removed = self.db.execute(
                    "DELETE FROM log WHERE kind = 'event' AND (key = ?1"
                    " OR json_extract(CAST(body AS TEXT), '$.user_id') = ?1"
                    " OR json_extract(CAST(body AS TEXT), '$.anonymous_id') = ?1)",
                    (user_id,),
                ).rowcount
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return int(removed)

        return await self._run(delete)

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(shut)
        self._thread.shutdown(wait=True)


def _record(row: tuple[int, RecordKind, str, bytes]) -> LogRecord:
    seq, kind, key, body = row
    return LogRecord(kind=kind, key=key, body=body, position=str(seq))
