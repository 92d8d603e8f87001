"""Archive compaction: erasures (tombstones) and retention, applied to the Parquet files.

Erasing a user writes a **tombstone** (``<archive>/tombstones/<receipt>.json``) at once:
from then on `read_events` hides the user's rows. Compaction then rewrites every file
that holds such rows without them (temporary file, fsync, rename: readers see the old
file or the new one, never half of one), deletes files left empty, and removes the
tombstones it applied. It also enforces **retention**: event partitions whose day is
entirely older than the retention period are deleted.

Why tombstones rather than rewriting during the erase call: rewriting means reading the
archive's user columns (seconds to minutes on a large archive); batching many erasures
into one pass costs the same as one. Tombstones younger than a grace period are left
for the next pass, so a batch that another process' archiver read before the erasure
and writes just after is still caught. One compaction runs at a time (a lock file).
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from relevo.clock import to_datetime
from relevo.eventlog.archive import events_glob, write_atomically
from relevo.eventlog.tombstones import tombstones

DEFAULT_GRACE_MS = 5 * 60_000


@dataclass(slots=True)
class CompactionReport:
    tombstones_applied: int = 0
    files_rewritten: int = 0
    files_deleted: int = 0
    rows_removed: int = 0
    partitions_expired: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tombstones_applied": self.tombstones_applied,
            "files_rewritten": self.files_rewritten,
            "files_deleted": self.files_deleted,
            "rows_removed": self.rows_removed,
            "partitions_expired": list(self.partitions_expired),
        }


def compact(
    root: Path, now_ms: int, retention_ms: int, grace_ms: int = DEFAULT_GRACE_MS
) -> CompactionReport:
    """Apply tombstones older than `grace_ms` and drop days older than `retention_ms` (0: keep)."""
    report = CompactionReport()
    if not root.is_dir():
        return report
    with _exclusive(root):
        if retention_ms > 0:
            report.partitions_expired = _expire(root, now_ms - retention_ms)
        due = {
            path: stone
            for path, stone in tombstones(root).items()
            if stone["created_at"] <= now_ms - grace_ms
        }
        users = sorted({stone["user_id"] for stone in due.values()})
        if users:
            for path in _files_with(root, users):
                removed, kept = _rewrite_without(path, users)
                report.rows_removed += removed
                if kept:
                    report.files_rewritten += 1
                else:
                    report.files_deleted += 1
        for path in due:
            path.unlink()
        report.tombstones_applied = len(due)
    return report


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    with open(root / ".compaction.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _expire(root: Path, cutoff_ms: int) -> list[str]:
    """Delete event partitions whose whole day lies before the cutoff."""
    cutoff_day = to_datetime(cutoff_ms).date()
    expired = []
    for partition in sorted((root / "events").glob("date=*")):
        try:
            day = date.fromisoformat(partition.name.removeprefix("date="))
        except ValueError:
            continue
        if day < cutoff_day:
            shutil.rmtree(partition)
            expired.append(partition.name)
    return expired


def _files_with(root: Path, users: list[str]) -> list[Path]:
    if not any((root / "events").glob("*/*.parquet")):
        return []
    query = f"""
        SELECT DISTINCT filename FROM read_parquet('{events_glob(root)}', filename = true,
                                                   union_by_name = true)
        WHERE user_id IN (SELECT unnest($users)) OR anonymous_id IN (SELECT unnest($users))
    """
    with duckdb.connect() as connection:
        rows = connection.execute(query, {"users": users}).fetchall()
    return [Path(name) for (name,) in rows]


def _rewrite_without(path: Path, users: list[str]) -> tuple[int, int]:
    """(rows removed, rows kept); a file left empty is deleted."""
    table = pq.read_table(path)
    wanted = pa.array(users, type=pa.string())
    mine = pc.or_kleene(
        pc.fill_null(pc.is_in(table["user_id"], value_set=wanted), False),
        pc.fill_null(pc.is_in(table["anonymous_id"], value_set=wanted), False),
    )
    kept = table.filter(pc.invert(mine))
    removed = table.num_rows - kept.num_rows
    if kept.num_rows == 0:
        path.unlink()
    else:
        write_atomically(kept, path)
    return removed, kept.num_rows
