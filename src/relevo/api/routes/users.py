"""``GET /v1/users/{user_id}`` (the real-time profile) and ``DELETE`` (erasure): admin only.

Reading a profile needs an admin key: write keys are public (embedded in pages), and a
public key that reads any profile by id would leak every user's history.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from relevo.api.deps import EngineDep
from relevo.api.responses import JSON, ErrorBody
from relevo.api.routes.consent import UserId
from relevo.api.security import ADMIN, RESPONSES
from relevo.errors import NotFound

router = APIRouter(tags=["users"], dependencies=[ADMIN], responses=RESPONSES)

_PROFILE_EXAMPLE = {
    "user_id": "u-42",
    "created_at": "2026-11-20T09:12:00.000Z",
    "updated_at": "2026-11-26T10:00:00.000Z",
    "events": 12,
    "counts": {"view": {"5m": 3, "1h": 4, "24h": 9, "30d": 11, "total": 11}},
    "category_counts": {"view": {"shoes": {"5m": 3, "1h": 3, "24h": 5, "30d": 6, "total": 6}}},
    "first_seen": {"view": "2026-11-20T09:12:00.000Z"},
    "last_seen": {"view": "2026-11-26T10:00:00.000Z"},
    "rfm": {"recency_days": 3.2, "frequency": 1, "monetary": 89.9},
    "session": {
        "id": "s-19ac1f",
        "started_at": "2026-11-26T09:55:00.000Z",
        "last_event_at": "2026-11-26T10:00:00.000Z",
        "events": 4,
        "count": 3,
    },
    "affinities": {"shoes": 7.4, "outdoor": 1.2},
    "recent_items": ["sho-001", "out-004"],
    "cart": [{"item_id": "sho-001", "quantity": 1, "added_at": "2026-11-26T09:58:00.000Z"}],
    "segments": [],
    "consent": {},
    "attributes": {},
}

DESCRIPTION = """
What relevo knows of a user now, computed in event time:

* `counts`: events by type in the last `5m`, `1h` (exact), `24h` (whole hours), `30d`
  (whole days) and in `total`; `category_counts`: the same per category.
* `first_seen` / `last_seen` by type; `rfm`: days since the last purchase, number of
  purchases, money spent; `session`: the current session (split after 30 minutes idle).
* `affinities`: category scores decaying by half every 7 days (view 1, click 2,
  add_to_cart 3, purchase 5); `recent_items`: the last 50 items, newest first; `cart`.
* `segments`, `consent` and `attributes`, set by rules and consent events.
"""


@router.get(
    "/v1/users/{user_id}",
    summary="A user's real-time profile",
    description=DESCRIPTION,
    responses={
        200: {"content": {"application/json": {"example": _PROFILE_EXAMPLE}}},
        404: {"model": ErrorBody, "description": "No event of this user was ever received"},
    },
)
async def get_user(user_id: UserId, engine: EngineDep) -> JSON:
    profile = await engine.profile(user_id)
    if profile is None:
        raise NotFound(f"no profile for user {user_id!r}", field="user_id")
    return JSON(profile)


class ReceiptBody(BaseModel):
    receipt_id: str = Field(examples=["5f0c9b7e4a1d4c2e9b8a7f6e5d4c3b2a"])
    user_id: str = Field(examples=["u-42"])
    erased_at: str = Field(examples=["2026-11-26T10:00:00.000Z"])
    removed: dict[str, int] = Field(
        examples=[{"archive_tombstones": 1, "store_keys": 2, "recent_events": 3, "event_log": 12}]
    )
    pending: list[str]


@router.delete(
    "/v1/users/{user_id}",
    summary="Erase a user everywhere",
    description="Removes the profile and every other key of the user, their entries in the "
    "recent-events feed and their records in the event log; hides their archived rows at "
    "once and removes them from the Parquet files at the next compaction. Idempotent: "
    "erasing an unknown user returns a receipt with zero counts. Events received after "
    "the erasure are new data.",
    response_model=ReceiptBody,
)
async def erase_user(user_id: UserId, engine: EngineDep) -> JSON:
    receipt = await engine.erase(user_id)
    return JSON(receipt.to_dict())
