"""``PUT /v1/users/{user_id}/consent``: record what a user allowed (write access).

A write key may do this because it can already send the same thing as a ``consent``
event; the call is a convenience for a site's backend or consent-management platform.
"""

from __future__ import annotations

from typing import TypeAlias

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from relevo.api.deps import EngineDep, PathId
from relevo.api.responses import JSON, ErrorBody
from relevo.api.security import RESPONSES, WRITE

router = APIRouter(tags=["users"], dependencies=[WRITE], responses=RESPONSES)

UserId: TypeAlias = PathId


class ConsentBody(BaseModel):
    """The purposes to set; a purpose left out keeps its current value."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"personalization": False, "analytics": True}]},
    )

    personalization: bool | None = Field(
        None, description="Per-user profile, personalized decisions, training."
    )
    analytics: bool | None = Field(None, description="Per-user analytics and KPI attribution.")

    @model_validator(mode="after")
    def _at_least_one(self) -> ConsentBody:
        if self.personalization is None and self.analytics is None:
            raise ValueError("set personalization, analytics, or both")
        return self


class ConsentState(BaseModel):
    user_id: str
    consent: dict[str, bool] = Field(examples=[{"personalization": False, "analytics": True}])


@router.put(
    "/v1/users/{user_id}/consent",
    summary="Set a user's consent",
    description="Records a `consent` event for the user (durable, replayed, archived). "
    "Refusing `personalization` clears the profile and keeps it empty: decisions serve "
    "the default; site-wide counts still include the user's events.",
    response_model=ConsentState,
    responses={422: {"model": ErrorBody}},
)
async def put_consent(user_id: UserId, body: ConsentBody, engine: EngineDep) -> JSON:
    purposes = body.model_dump(exclude_none=True)
    return JSON({"user_id": user_id, "consent": await engine.set_consent(user_id, purposes)})
