"""Backfill: historical events from JSONL, CSV or Parquet, through the live code path.

Rows are read with their line (or row) numbers, sent in batches to `Engine.ingest`
(in process) or to a running server's ``POST /v1/events``, so validation,
deduplication and feature code are exactly those of live traffic. Original
timestamps are kept. Bad rows are reported by line number while good rows are
imported, and re-importing a file imports nothing twice (event ids, or content-derived
ids, are remembered for the dedupe horizon).

CSV: one column per top-level field; nested fields as dotted columns
(``context.device``, ``properties.query``) or as JSON text (``items``, ``context``,
``properties``); empty cells are absent fields; epoch-millisecond timestamps as digits.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson

Format = Literal["auto", "jsonl", "csv", "parquet"]
_JSON_COLUMNS = {"items", "context", "properties"}
_NUMBER_COLUMNS = {"value"}


@dataclass(slots=True)
class Row:
    line: int
    event: Any = None
    error: str | None = None


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected),
            "errors": self.rejected,
        }


def detect_format(path: Path, declared: Format) -> Format:
    if declared != "auto":
        return declared
    suffixes = "".join(path.suffixes).lower()
    for ending, found in (
        (".parquet", "parquet"),
        (".csv", "csv"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
    ):
        if suffixes.endswith(ending):
            return found  # type: ignore[return-value]
    raise ValueError(f"can't tell the format of {path.name}; pass --format jsonl|csv|parquet")


def read_jsonl(handle: Any) -> Iterator[Row]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield Row(number, orjson.loads(line))
        except orjson.JSONDecodeError as error:
            yield Row(number, error=f"not valid JSON: {error}")


def read_csv(handle: Any) -> Iterator[Row]:
    reader = csv.DictReader(handle)
    previous_end = 1  # the header's line
    for row in reader:
        line = previous_end + 1
        previous_end = reader.line_num
        try:
            yield Row(line, _csv_event(row))
        except ValueError as error:
            yield Row(line, error=str(error))


def _csv_event(row: dict[str, str | None]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell == "":
            continue
        if column in _JSON_COLUMNS:
            try:
                event[column] = orjson.loads(cell)
            except orjson.JSONDecodeError:
                raise ValueError(f"column {column!r} is not valid JSON") from None
        elif column == "timestamp" and cell.isdigit():
            event[column] = int(cell)
        elif column in _NUMBER_COLUMNS:
            try:
                event[column] = float(cell)
            except ValueError:
                raise ValueError(f"column {column!r} is not a number: {cell!r}") from None
        elif "." in column:
            parent, child = column.split(".", 1)
            event.setdefault(parent, {})[child] = cell
        else:
            event[column] = cell
    return event


def read_parquet(path: Path, on_rows: Callable[[int], None]) -> Iterator[Row]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            number += 1
            yield Row(number, {key: value for key, value in row.items() if value is not None})
        on_rows(batch.num_rows)


Send = Callable[[list[Any]], Awaitable[dict[str, Any]]]


async def run_import(rows: Iterator[Row], send: Send, batch_size: int) -> ImportReport:
    """Send rows in batches; collect what was imported, duplicated and rejected."""
    report = ImportReport()
    pending: list[Row] = []

    async def flush() -> None:
        if not pending:
            return
        answer = await send([row.event for row in pending])
        for row, result in zip(pending, answer["results"], strict=True):
            if result["status"] == "accepted":
                report.imported += 1
            elif result["status"] == "duplicate":
                report.duplicates += 1
            else:
                error = result.get("error", {})
                field_name = str(error.get("field", "")).split("]", 1)[-1].lstrip(".") or None
                report.rejected.append(
                    {"line": row.line, "field": field_name, "message": error.get("message")}
                )
        pending.clear()

    for row in rows:
        if row.error is not None:
            report.rejected.append({"line": row.line, "field": None, "message": row.error})
            continue
        pending.append(row)
        if len(pending) >= batch_size:
            await flush()
    await flush()
    report.rejected.sort(key=lambda entry: entry["line"])
    return report


def http_sender(url: str, key: str | None, attempts: int = 6) -> tuple[Send, httpx.AsyncClient]:
    """Send batches to a running server, retrying 429/503 with exponential backoff."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    client = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=60)

    async def send(events: list[Any]) -> dict[str, Any]:
        delay = 0.25
        for attempt in range(attempts):
            response = await client.post("/v1/events", content=orjson.dumps({"events": events}))
            if response.status_code in (429, 503) and attempt + 1 < attempts:
                retry_after = response.headers.get("retry-after", "")
                await asyncio.sleep(float(retry_after) if retry_after.isdigit() else delay)
                delay *= 2
                continue
            if response.status_code != 200:
                raise RuntimeError(
                    f"the server answered {response.status_code}: {response.text[:300]}"
                )
            answer: dict[str, Any] = response.json()
            return answer
        raise RuntimeError("the server stayed unavailable")

    return send, client
