"""From a request body to event records, with a result for every event.

Semantics (also in the OpenAPI description of ``POST /v1/events``):

- a single event that is invalid → `InvalidInput` (HTTP 422) naming the field;
- in a batch, invalid events are rejected one by one and the valid ones accepted,
  unless the batch is *atomic*: then one invalid event rejects the whole batch
  (HTTP 422, with every problem listed) and nothing is written;
- an event already accepted (same id, or same content when it has no id) is reported
  as a `duplicate` and counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from relevo.errors import InvalidInput
from relevo.events import Limits, event_record, finish_record, parse_all, parse_event

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(slots=True)
class EventResult:
    index: int
    status: Status
    event_id: str | None = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.event_id is not None:
            body["event_id"] = self.event_id
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(slots=True)
class IngestReport:
    results: list[EventResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(result.status == status for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        # Built for every event a request sent: the counts from one list of statuses, and
        # an event's result written out here when it has an id and no error (nearly all).
        statuses = [result.status for result in self.results]
        return {
            "accepted": statuses.count("accepted"),
            "duplicate": statuses.count("duplicate"),
            "rejected": statuses.count("rejected"),
            "results": [
                {"index": r.index, "status": r.status, "event_id": r.event_id}
                if r.error is None and r.event_id is not None
                else r.to_dict()
                for r in self.results
            ],
        }


class InvalidBatch(InvalidInput):
    """An atomic batch with invalid events: nothing was written."""

    code = "invalid_batch"

    def __init__(self, report: IngestReport) -> None:
        rejected = [r for r in report.results if r.status == "rejected"]
        first = rejected[0].error or {}
        super().__init__(
            f"{len(rejected)} of {len(report.results)} events are invalid "
            f"(first: {first.get('field')}: {first.get('message')}); nothing was written",
            field=first.get("field"),
        )
        self.report = report

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["results"] = [r.to_dict() for r in self.report.results if r.status == "rejected"]
        return body


def validate_events(
    raws: list[Any], limits: Limits, *, batch: bool, received_ms: int
) -> tuple[list[dict[str, Any] | None], IngestReport]:
    """Records for the valid events (None where invalid) and a report with rejections."""
    report = IngestReport()
    valid = parse_all(raws, limits)
    if valid is not None:
        finished: list[dict[str, Any] | None] = [finish_record(r, received_ms) for r in valid]
        report.results = [  # positional: keywords cost a third more, for every event
            EventResult(index, "accepted", record["event_id"]) for index, record in enumerate(valid)
        ]
        return finished, report
    records: list[dict[str, Any] | None] = []
    for index, raw in enumerate(raws):
        try:
            event = parse_event(raw, limits, prefix=f"events[{index}]" if batch else "")
        except InvalidInput as error:
            if not batch:
                raise
            records.append(None)
            report.results.append(EventResult(index, "rejected", error=error.to_dict()))
            continue
        record = event_record(event, received_ms)
        records.append(record)
        report.results.append(EventResult(index, "accepted", event_id=record["event_id"]))
    return records, report
