"""``POST /v1/events``: one event or a batch (write access)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from relevo.api.deps import engine_of
from relevo.api.direct import DirectRoute
from relevo.api.responses import JSON, ErrorBody, read_json
from relevo.api.security import RESPONSES, WRITE
from relevo.errors import InvalidInput

router = APIRouter(tags=["events"], dependencies=[WRITE], responses=RESPONSES)

DESCRIPTION = """
Send **one event** (an object with a `type`) or **a batch** `{"events": [...]}` of up to
10,000 events.

* Every event gets a result: `accepted`, `duplicate` (already accepted: same `event_id`,
  or same content when the event has no id) or `rejected` (with the field and the reason).
  A response with HTTP 200 means every accepted event is durably logged and already
  applied to the user's profile.
* A **single** invalid event → **422** naming the field; nothing is written.
* In a **batch**, invalid events are rejected one by one and the valid ones accepted
  (HTTP 200 with per-event results). With `?atomic=true` the batch is **all-or-nothing**:
  one invalid event → **422** listing every problem, and nothing is written.
* A body that is not JSON, or neither an event nor `{"events": [...]}` → **422**; nothing
  is written. A body over the size limit → **413**.
* Timestamps: ISO-8601 with a time zone, or epoch milliseconds; more than 5 minutes in the
  future is rejected. Unknown top-level fields are rejected; `properties` is free-form but
  bounded in depth and size.
"""

_EXAMPLES = {
    "single": {
        "summary": "One event",
        "value": {
            "type": "view",
            "user_id": "u-42",
            "item_id": "sho-001",
            "timestamp": "2026-11-26T10:00:00Z",
            "context": {"device": "mobile", "country": "FR"},
        },
    },
    "batch": {
        "summary": "A batch",
        "value": {
            "events": [
                {"event_id": "e-1", "type": "view", "user_id": "u-42", "item_id": "sho-001"},
                {
                    "event_id": "e-2",
                    "type": "add_to_cart",
                    "user_id": "u-42",
                    "items": [{"item_id": "sho-001", "quantity": 1}],
                },
            ]
        },
    },
}


class EventResultBody(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = None
    error: dict[str, Any] | None = None


class IngestBody(BaseModel):
    accepted: int = Field(examples=[2])
    duplicate: int = Field(examples=[0])
    rejected: int = Field(examples=[0])
    results: list[EventResultBody]


def split_body(body: Any) -> tuple[list[Any], bool]:
    """(events, is_batch) from a parsed body, or `InvalidInput` saying what is wrong."""
    if isinstance(body, dict) and "events" in body:
        extra = sorted(set(body) - {"events"})
        if extra:
            raise InvalidInput(
                f"a batch envelope holds only 'events'; unexpected: {', '.join(extra)}",
                field=extra[0],
                code="invalid_body",
            )
        if not isinstance(body["events"], list):
            raise InvalidInput(
                "'events' must be a list of events", field="events", code="invalid_body"
            )
        return body["events"], True
    if isinstance(body, dict):
        return [body], False
    raise InvalidInput(
        'expected an event object or a batch {"events": [...]}', field="body", code="invalid_body"
    )


_BOOL = TypeAdapter(bool)
ATOMIC = "All-or-nothing batch: one invalid event rejects all."


def atomic_flag(request: Request) -> bool:
    """``?atomic=``, read as FastAPI reads a ``bool`` query parameter (pydantic's: `true`,
    `1`, `yes`, `on`...; the last one given), refused as it refuses one."""
    given = request.query_params.get("atomic")
    if given is None:
        return False
    try:
        return _BOOL.validate_python(given)
    except ValidationError as error:
        raise InvalidInput(error.errors()[0]["msg"], field="atomic") from None


async def post_events(request: Request) -> JSON:
    engine = engine_of(request)
    atomic = atomic_flag(request)
    body = await read_json(request, engine.settings.max_body_bytes)
    events, batch = split_body(body)
    report = await engine.ingest(events, batch=batch, atomic=atomic)
    return JSON(report.to_dict())


router.add_api_route(
    "/v1/events",
    post_events,
    methods=["POST"],
    summary="Send events (one or a batch)",
    description=DESCRIPTION,
    response_model=IngestBody,
    responses={
        413: {"model": ErrorBody, "description": "Body too large"},
        422: {"model": ErrorBody, "description": "Invalid body or event"},
        503: {"model": ErrorBody, "description": "Store or log unavailable; retry"},
    },
    openapi_extra={
        "parameters": [
            {
                "name": "atomic",
                "in": "query",
                "required": False,
                "description": ATOMIC,
                "schema": {"type": "boolean", "default": False, "title": "Atomic"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Event"},
                            {"$ref": "#/components/schemas/EventBatch"},
                        ]
                    },
                    "examples": _EXAMPLES,
                }
            },
        },
    },
    route_class_override=DirectRoute,  # most requests of a site: no dependencies to solve
)
