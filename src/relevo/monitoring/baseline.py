"""Capturing a baseline reference when no served model has one.

``POST /v1/monitoring/baseline`` and ``relevo monitoring baseline`` call this. The
baseline comes from the archive (every archived event, or those since a date: the
same feature code replays them) or from the values recently observed live (the
shared observation stream: what traffic looked like in the last minutes).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from relevo.errors import InvalidInput
from relevo.models import training_data

if TYPE_CHECKING:
    from relevo.engine import Engine

Source = Literal["archive", "live"]
SOURCES: tuple[str, ...] = ("archive", "live")


def parse_request(body: Any) -> tuple[Source, int | None]:
    """``{"source": "archive"|"live", "since": ISO-8601?}``; 422 naming the field."""
    from relevo.clock import from_datetime

    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", field="body")
    unknown = sorted(set(body) - {"source", "since"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    source = body.get("source", "archive")
    if source not in SOURCES:
        raise InvalidInput(
            f"source must be one of {', '.join(SOURCES)}; got {source!r}", field="source"
        )
    since = body.get("since")
    since_ms = None
    if since is not None:
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat(str(since))
        except ValueError:
            raise InvalidInput("since must be an ISO-8601 date-time", field="since") from None
        if parsed.tzinfo is None:
            raise InvalidInput("since must carry a time zone (Z or +hh:mm)", field="since")
        since_ms = from_datetime(parsed)
    return source, since_ms


async def capture(engine: Engine, source: Source, since_ms: int | None = None) -> dict[str, Any]:
    """Capture and store a baseline; 422 when there is nothing to capture from."""
    records: list[dict[str, Any]] | None = None
    if source == "archive":
        await engine.archiver.flush()
        archive = engine.settings.archive_path
        if not archive.exists():
            raise _empty(source)
        data = await asyncio.to_thread(training_data.load, archive, since_ms=since_ms)
        records = data.records
        if not records:
            raise _empty(source)
    captured = await engine.monitoring.capture_baseline(source, records)
    # Embedded mode snapshots the store only when the log moved; a baseline is an
    # operator's decision and must survive a restart even if no event follows it.
    checkpoint = getattr(engine.backend, "checkpoint", None)
    if checkpoint is not None:
        await checkpoint(force=True)
    return captured


def _empty(source: str) -> InvalidInput:
    return InvalidInput(
        f"not enough values in the {source} to capture a baseline",
        field="source",
        code="not_enough_data",
    )
