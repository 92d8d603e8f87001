"""``GET /v1/recommendations``, ``GET /v1/items/{item_id}/similar``, ``POST /v1/propensity``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from relevo.api.deps import EngineDep
from relevo.api.responses import JSON, ErrorBody, read_json
from relevo.api.security import RESPONSES, WRITE
from relevo.errors import InvalidInput

router = APIRouter(tags=["recommendations"], dependencies=[WRITE], responses=RESPONSES)

_REASONS = [
    {"source": "covisitation", "model_version": "live"},
    {"source": "model", "model_version": "v3"},
]
_EXAMPLE = {
    "user_id": "u-42",
    "items": [
        {"item_id": "sho-004", "score": 2.18, "reasons": _REASONS},
        {"item_id": "sho-011", "score": 1.4, "reasons": [_REASONS[1]]},
    ],
    "model": {"name": "relevo", "version": "v3"},
    "fallback": False,
}

DESCRIPTION = """
Up to `k` items for a user **now**: the promoted trained model blended with live signals —
co-visitation of the user's newest items in their sessions (a click made a moment ago changes
the next answer), trending items in the categories of the request and of the user's tastes,
attribute neighbours of a new item — then business rules: never an item out of stock, never
the page's own item, the user's recent items and cart left out unless `exclude_seen=false`.

Each item lists its `reasons`: which `source` proposed it (`model`, `model_similar`,
`covisitation`, `trending`, `trending_category`, `attributes`, `catalog`) and the
`model_version` behind it (`live` for live models). `model` names the promoted version served;
`fallback` is true when that model contributed nothing (none promoted, a user and items it
never met, or a failure): the answer then comes from live signals and the context, and it is
never an error.

Context (a brand-new visitor gets a context-aware list): `category` (a category page),
`item_id` (the product page's item), `device`, `country`, `page`, `referrer`.
"""


@router.get(
    "/v1/recommendations",
    summary="Recommended items for a user, now",
    description=DESCRIPTION,
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
async def recommendations(
    engine: EngineDep,
    user_id: str = Query(..., min_length=1, max_length=256, description="User or anonymous id."),
    k: int = Query(10, ge=1, le=100, description="How many items."),
    placement: str | None = Query(None, max_length=128, description="The page slot asking."),
    exclude_seen: bool = Query(True, description="Leave out the user's recent items and cart."),
    category: str | None = Query(None, max_length=128, description="Only this category."),
    item_id: str | None = Query(None, max_length=256, description="The page's item (context)."),
    device: str | None = Query(None, max_length=64),
    country: str | None = Query(None, max_length=2),
    page: str | None = Query(None, max_length=2048),
    referrer: str | None = Query(None, max_length=2048),
) -> JSON:
    context = {
        name: value
        for name, value in {
            "placement": placement,
            "item_id": item_id,
            "device": device,
            "country": country,
            "page": page,
            "referrer": referrer,
        }.items()
        if value is not None
    }
    found = await engine.recommend(
        user_id, k, context=context, category=category, exclude_seen=exclude_seen
    )
    return JSON(found.to_dict())


@router.get(
    "/v1/items/{item_id}/similar",
    summary="Items similar to an item",
    description="The promoted model's neighbours, live co-visitation (people who touched this, "
    "then that, in a session) and attribute neighbours (category, tags, brand, words: a new item "
    "has them from its first upsert), in stock only. 404 when no source knows the item.",
    responses={404: {"model": ErrorBody}},
)
async def similar(item_id: str, engine: EngineDep, k: int = Query(10, ge=1, le=100)) -> JSON:
    return JSON((await engine.similar_items(item_id, k)).to_dict())


@router.post(
    "/v1/propensity",
    summary="P(click) or P(convert) of candidates for a user",
    description='Body: `{"user_id"?, "candidates": [{"item_id"} | {"variant_id", "category"?, '
    '"price"?}], "context"?: {...}, "target"?: "click" | "convert"}`. Calibrated '
    "probabilities from the promoted propensity model; without one, `p` is null and "
    "`fallback` true.",
    responses={422: {"model": ErrorBody}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "user_id": "u-42",
                        "candidates": [{"variant_id": "A"}, {"variant_id": "B"}],
                        "context": {"device": "mobile"},
                        "target": "click",
                    },
                }
            },
        }
    },
)
async def propensity(request: Request, engine: EngineDep) -> JSON:
    body = await read_json(request, engine.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", field="body", code="invalid_body")
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise InvalidInput("'candidates' must be a list of objects", field="candidates")
    if len(candidates) > 1000:
        raise InvalidInput("at most 1000 candidates", field="candidates")
    user_id = body.get("user_id")
    context = body.get("context") or {}
    target = body.get("target", "click")
    if user_id is not None and not isinstance(user_id, str):
        raise InvalidInput("'user_id' must be a string", field="user_id")
    if not isinstance(context, dict):
        raise InvalidInput("'context' must be an object", field="context")
    if not isinstance(target, str):
        raise InvalidInput("'target' must be a string", field="target")
    scored: Any = await engine.score_variants(user_id, candidates, context=context, target=target)
    return JSON(scored.to_dict())
