"""Archive compaction: retention by whole days, tombstones after their grace period."""

from __future__ import annotations

from pathlib import Path

import orjson

from relevo.eventlog.archive import ArchiveWriter, read_events
from relevo.eventlog.base import LogRecord
from relevo.eventlog.compaction import compact
from relevo.eventlog.tombstones import add_tombstone, erased_users

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01


def archive(root: Path, rows: list[tuple[str, int]]) -> None:
    records = [
        LogRecord(
            "event",
            user,
            orjson.dumps({"event_id": f"e{n}", "type": "view", "user_id": user, "timestamp": ts}),
            str(n + 1),
        )
        for n, (user, ts) in enumerate(rows)
    ]
    ArchiveWriter(root).write(records)


def test_retention_drops_days_entirely_before_the_cutoff(tmp_path: Path) -> None:
    archive(
        tmp_path, [("u", T0), ("u", T0 + 10 * DAY), ("u", T0 + 10 * DAY + 5), ("u", T0 + 20 * DAY)]
    )
    report = compact(tmp_path, now_ms=T0 + 26 * DAY + 1, retention_ms=15 * DAY)
    assert report.partitions_expired == ["date=2026-01-01", "date=2026-01-11"]
    assert read_events(tmp_path).num_rows == 1
    assert compact(tmp_path, now_ms=T0 + 400 * DAY, retention_ms=0).partitions_expired == []


def test_tombstones_wait_for_their_grace_then_rows_go(tmp_path: Path) -> None:
    archive(tmp_path, [("gone", T0), ("stays", T0), ("gone", T0 + DAY)])
    add_tombstone(tmp_path, "gone", now_ms=T0 + 2 * DAY)
    assert erased_users(tmp_path) == ["gone"]
    assert read_events(tmp_path).column("user_id").to_pylist() == ["stays"]
    early = compact(tmp_path, now_ms=T0 + 2 * DAY + 1000, retention_ms=0, grace_ms=60_000)
    assert early.tombstones_applied == 0
    done = compact(tmp_path, now_ms=T0 + 2 * DAY + 60_000, retention_ms=0, grace_ms=60_000)
    assert done.to_dict() == {
        "tombstones_applied": 1,
        "files_rewritten": 1,
        "files_deleted": 1,
        "rows_removed": 2,
        "partitions_expired": [],
    }
    assert erased_users(tmp_path) == []
    assert read_events(tmp_path).column("user_id").to_pylist() == ["stays"]


def test_compacting_an_empty_or_missing_archive_is_a_no_op(tmp_path: Path) -> None:
    assert compact(tmp_path / "none", now_ms=T0, retention_ms=DAY).tombstones_applied == 0
    add_tombstone(tmp_path, "x", now_ms=T0)
    assert compact(tmp_path, now_ms=T0, retention_ms=DAY, grace_ms=0).tombstones_applied == 1
