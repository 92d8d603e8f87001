"""The archive writer as it was before it built tables column by column: the reference.

`tests/unit/test_archive_writer.py` checks that `ArchiveWriter` writes exactly what this
did, and `bench.archive` measures both. Kept out of `src`: nothing runs it in production.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from relevo.clock import to_datetime
from relevo.eventlog.archive import EVENT_SCHEMA, ITEM_SCHEMA, write_atomically
from relevo.eventlog.base import LogRecord


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _event_row(record: dict[str, Any], position: str) -> dict[str, Any]:
    return {
        "event_id": record["event_id"],
        "type": record["type"],
        "user_id": record.get("user_id"),
        "anonymous_id": record.get("anonymous_id"),
        "session_id": record.get("session_id"),
        "timestamp": to_datetime(record["timestamp"]),
        "item_id": record.get("item_id"),
        "items": record.get("items"),
        "category": record.get("category"),
        "value": record.get("value"),
        "decision_id": record.get("decision_id"),
        "context": _json(record.get("context")),
        "properties": _json(record.get("properties")),
        "position": position,
    }


def _item_row(record: dict[str, Any], position: str) -> dict[str, Any]:
    return {
        "item_id": record["item_id"],
        "updated_at": to_datetime(record["updated_at"]),
        "category": record.get("category"),
        "price": record.get("price"),
        "in_stock": record.get("in_stock"),
        "document": orjson.dumps(record).decode(),
        "position": position,
    }


def row_tables(records: Sequence[LogRecord]) -> dict[tuple[str, str], pa.Table]:
    """The table of each (kind, day), from row dicts as the writer built them."""
    partitions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.kind not in ("event", "item"):
            continue
        body = orjson.loads(record.body)
        if record.kind == "event":
            row = _event_row(body, record.position)
            day = row["timestamp"].strftime("%Y-%m-%d")
            partitions[("events", day)].append(row)
        else:
            row = _item_row(body, record.position)
            day = row["updated_at"].strftime("%Y-%m-%d")
            partitions[("items", day)].append(row)
    return {
        key: pa.Table.from_pylist(rows, schema=EVENT_SCHEMA if key[0] == "events" else ITEM_SCHEMA)
        for key, rows in sorted(partitions.items())
    }


def row_write(root: Path, records: Sequence[LogRecord]) -> list[Path]:
    """`ArchiveWriter(root).write(records)` as it was."""
    written = []
    for (kind, day), table in row_tables(records).items():
        directory = root / kind / f"date={day}"
        directory.mkdir(parents=True, exist_ok=True)
        first = table["position"][0].as_py().replace("-", "_").replace("/", "_")
        name = f"part-{first}-{uuid.uuid4().hex[:8]}.parquet"
        written.append(write_atomically(table, directory / name))
    return written
