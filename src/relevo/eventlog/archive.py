"""The Parquet archive: every event and item upsert, partitioned by day.

Layout (Hive-style, readable by DuckDB, Spark, pandas or a warehouse)::

    <archive>/events/date=2026-11-26/part-<first position>-<random>.parquet
    <archive>/items/date=2026-11-26/part-....parquet

Event columns are flat where they are typed (ids, type, timestamps, value) and
JSON text where they are free-form (`context`, `properties`); line items are a
list of structs. Files are written to a temporary name, fsynced and renamed, so a
reader never sees half a file. The archive is at-least-once: a crash between
writing a file and recording it as archived writes those records again, so
readers deduplicate by `event_id` (`read_events` does).
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from relevo.clock import to_datetime
from relevo.eventlog.base import LogRecord
from relevo.eventlog.tombstones import erased_users

_LINE = pa.struct(
    [
        ("item_id", pa.string()),
        ("quantity", pa.int64()),
        ("price", pa.float64()),
        ("category", pa.string()),
    ]
)
_TS = pa.timestamp("ms", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("session_id", pa.string()),
        ("timestamp", _TS),
        ("item_id", pa.string()),
        ("items", pa.list_(_LINE)),
        ("category", pa.string()),
        ("value", pa.float64()),
        ("decision_id", pa.string()),
        ("context", pa.string()),
        ("properties", pa.string()),
        ("position", pa.string()),
    ]
)

ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("updated_at", _TS),
        ("category", pa.string()),
        ("price", pa.float64()),
        ("in_stock", pa.bool_()),
        ("document", pa.string()),
        ("position", pa.string()),
    ]
)


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


class ArchiveWriter:
    """Writes log records to Parquet files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, records: Sequence[LogRecord]) -> list[Path]:
        """Write records, one file per (kind, day); return the files written."""
        partitions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            if record.kind not in ("event", "item"):
                continue  # timer firings and rule changes are state, not history
            body = orjson.loads(record.body)
            if record.kind == "event":
                row = _event_row(body, record.position)
                day = row["timestamp"].strftime("%Y-%m-%d")
                partitions[("events", day)].append(row)
            else:
                row = _item_row(body, record.position)
                day = row["updated_at"].strftime("%Y-%m-%d")
                partitions[("items", day)].append(row)
        written = []
        for (kind, day), rows in sorted(partitions.items()):
            schema = EVENT_SCHEMA if kind == "events" else ITEM_SCHEMA
            directory = self.root / kind / f"date={day}"
            directory.mkdir(parents=True, exist_ok=True)
            first = rows[0]["position"].replace("-", "_").replace("/", "_")
            name = f"part-{first}-{uuid.uuid4().hex[:8]}.parquet"
            written.append(
                write_atomically(pa.Table.from_pylist(rows, schema=schema), directory / name)
            )
        return written


def write_atomically(table: pa.Table, path: Path) -> Path:
    temporary = path.with_name("." + path.name + ".tmp")
    pq.write_table(table, temporary, compression="zstd")
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    temporary.rename(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def events_glob(root: Path) -> str:
    return str(root / "events" / "*" / "*.parquet")


def read_events(root: Path, where: str = "true") -> pa.Table:
    """Archived events, each once, ordered by time; `where` is a SQL condition.

    Rows of erased users are hidden already before compaction removes them (their
    tombstones are read here). An empty archive gives an empty table with the event
    schema.
    """
    if not any((root / "events").glob("*/*.parquet")):
        return EVENT_SCHEMA.empty_table()
    query = f"""
        SELECT * EXCLUDE (date, copy) FROM (
            SELECT *, row_number() OVER (PARTITION BY event_id) AS copy
            FROM read_parquet('{events_glob(root)}', hive_partitioning = true,
                              union_by_name = true)
            WHERE ({where})
              AND coalesce(user_id, '') NOT IN (SELECT unnest($erased))
              AND coalesce(anonymous_id, '') NOT IN (SELECT unnest($erased))
        ) WHERE copy = 1 ORDER BY timestamp, event_id
    """
    with duckdb.connect() as connection:
        erased = erased_users(root) or ["\x00"]  # never an id: control characters are refused
        return connection.sql(query, params={"erased": erased}).to_arrow_table()


def read_items(root: Path) -> dict[str, dict[str, Any]]:
    """The newest archived document of every item (the catalog as the archive knows it)."""
    if not any((root / "items").glob("*/*.parquet")):
        return {}
    query = f"""
        SELECT document FROM (
            SELECT document, row_number() OVER (
                PARTITION BY item_id ORDER BY updated_at DESC, position DESC
            ) AS newest
            FROM read_parquet('{root / "items" / "*" / "*.parquet"}', hive_partitioning = true)
        ) WHERE newest = 1
    """
    with duckdb.connect() as connection:
        rows = connection.sql(query).fetchall()
    found = [orjson.loads(document) for (document,) in rows]
    return {item["item_id"]: item for item in found}
