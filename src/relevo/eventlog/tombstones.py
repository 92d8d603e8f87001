"""Tombstones: erased users whose archived rows are hidden now and removed by compaction.

One small JSON file per erasure under ``<archive>/tombstones/``, written atomically.
A tombstone holds the user id (it must, to find the rows) and lives only until the next
compaction pass has removed the rows (`relevo.eventlog.compaction`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import orjson


def tombstone_dir(root: Path) -> Path:
    return root / "tombstones"


def add_tombstone(root: Path, user_id: str, now_ms: int, receipt_id: str | None = None) -> Path:
    """Hide the user's archived rows now; compaction removes them later."""
    directory = tombstone_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{receipt_id or uuid.uuid4().hex}.json"
    temporary = path.with_name("." + path.name + ".tmp")
    temporary.write_bytes(orjson.dumps({"user_id": user_id, "created_at": now_ms}))
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    temporary.rename(path)
    return path


def tombstones(root: Path) -> dict[Path, dict[str, Any]]:
    directory = tombstone_dir(root)
    if not directory.is_dir():
        return {}
    return {path: orjson.loads(path.read_bytes()) for path in sorted(directory.glob("*.json"))}


def erased_users(root: Path) -> list[str]:
    """Users with a tombstone not yet compacted away (readers must hide their rows)."""
    return sorted({stone["user_id"] for stone in tombstones(root).values()})
