"""``POST /v1/decide`` and ``GET /v1/flags``: what a page shows (write key)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from relevo.api.deps import EngineDep, engine_of
from relevo.api.direct import DirectRoute
from relevo.api.responses import JSON, ErrorBody, read_json
from relevo.api.security import RESPONSES, WRITE
from relevo.decisions.request import DecideBody

router = APIRouter(tags=["decisions"], dependencies=[WRITE], responses=RESPONSES)

DESCRIPTION = """
Fill one placement for one user: a content **variant** (`{id, content, tags}`) or a list
of **items** (`[{item_id, score, reasons}]`), with the `decision_id` to send back on the
events that follow (`click`, `purchase`) so they are credited to this decision.

The policy runs rules, then the user's experiment arm, then models, then the default. The
answer is always HTTP 200: when a model, a rule or the store fails or is slower than the
placement's deadline (50 ms by default), the placement's default is returned with
`fallback: true` and the reason. `versions` names the rules, placements, experiments and
model versions that produced the answer.
"""


async def decide(request: Request) -> JSON:
    engine = engine_of(request)
    body = await read_json(request, engine.settings.max_body_bytes)
    return JSON(await engine.decide(body))


router.add_api_route(
    "/v1/decide",
    decide,
    methods=["POST"],
    summary="Decide what to show in a placement",
    description=DESCRIPTION,
    responses={404: {"model": ErrorBody, "description": "Unknown placement"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DecideBody.model_json_schema()}},
        }
    },
    route_class_override=DirectRoute,  # the hottest route: no dependencies to solve
)


@router.get(
    "/v1/flags",
    summary="Every feature flag's value for a user",
    description="Query: `user_id`, and the request context as `context.<name>=value` "
    "(`context.device=mobile&context.country=FR`). Each flag's value comes from its first "
    "matching targeting rule, else its percentage rollout, else its default; `reasons` says "
    "which.",
)
async def flags(
    request: Request, engine: EngineDep, user_id: str = Query(min_length=1, max_length=256)
) -> JSON:
    context = {
        name.removeprefix("context."): value
        for name, value in request.query_params.items()
        if name.startswith("context.")
    }
    return JSON(await engine.evaluate_flags(user_id, context))
