"""The body of ``POST /v1/decide``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relevo.decisions.pipeline import DecideRequest
from relevo.errors import InvalidInput
from relevo.events import Context, Id, invalid_from


class DecideBody(BaseModel):
    """Which placement to fill, for whom, in which context."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u-42",
                    "placement": "home_hero",
                    "context": {"device": "mobile", "referrer": "https://instagram.com/x"},
                }
            ]
        },
    )

    user_id: Id
    placement: str = Field(min_length=1, max_length=128)
    context: Context | None = None
    k: int | None = Field(None, ge=1, le=100, description="Items to return (item placements).")
    exclude: list[Id] = Field(default_factory=list, max_length=500)


def parse_decide(raw: Any) -> DecideRequest:
    if not isinstance(raw, dict):
        raise InvalidInput("expected a JSON object", field="body", code="invalid_body")
    try:
        body = DecideBody.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error) from None
    context = {} if body.context is None else body.context.model_dump(exclude_none=True)
    return DecideRequest(body.user_id, body.placement, context, body.k, list(body.exclude))
