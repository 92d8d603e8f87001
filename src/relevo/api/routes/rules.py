"""Rules: ``/v1/rules`` (versions, validation, testing, rollback, statistics), ``/v1/actions``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from relevo.api.deps import EngineDep
from relevo.api.responses import JSON, ErrorBody, read_json
from relevo.api.security import ADMIN, RESPONSES
from relevo.errors import InvalidInput

router = APIRouter(tags=["rules"], dependencies=[ADMIN], responses=RESPONSES)

_EXAMPLE = {
    "rules": [
        {
            "id": "electronics-burst",
            "trigger": {"on": "view"},
            "when": "profile.category_counts.view['electronics']['5m'] > 3",
            "then": [{"add_segment": "electronics-burst"}],
        },
        {
            "id": "cart-abandoned",
            "trigger": {"after": "add_to_cart", "inactive_for": "15m", "unless": ["purchase"]},
            "then": [{"emit": "cart_abandoned"}],
        },
    ]
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}, "example": _EXAMPLE}},
    }
}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "Invalid rules, with every problem and its position"}
}


async def _body(request: Request, engine: EngineDep) -> Any:
    return await read_json(request, engine.settings.max_body_bytes)


@router.get("/v1/rules", summary="The active rule set")
async def get_rules(engine: EngineDep, version: str | None = Query(None)) -> JSON:
    return JSON(await engine.rules.spec(version))


@router.put(
    "/v1/rules",
    summary="Replace the active rule set",
    description="Validates every rule (CEL conditions are compiled); on any problem → 422 "
    "listing each with its rule id, field and position, and the active version stays. "
    "Otherwise the set becomes a new immutable version (`v1`, `v2`, ...), active at once in "
    "this process and within a second in every other. Sending the active set again "
    "creates nothing (`changed: false`), so retries and GitOps are safe.",
    responses=_INVALID,
    openapi_extra=_BODY,
)
async def put_rules(request: Request, engine: EngineDep) -> JSON:
    return JSON(await engine.put_rules(await _body(request, engine)))


@router.post(
    "/v1/rules/validate", summary="Check a rule set", responses=_INVALID, openapi_extra=_BODY
)
async def validate_rules(request: Request, engine: EngineDep) -> JSON:
    return JSON(await engine.validate_rules(await _body(request, engine)))


@router.post(
    "/v1/rules/test",
    summary="Evaluate rules against a user or a profile, without side effects",
    description="Body: `rules` (default: the active set), `user_id` or `profile`, and an "
    "`event` and/or a `placement` with `context` and candidate `items`. Answers what fired, "
    "the resulting segments, attributes, actions and timers, the decision (variant, item "
    "order), and `explain`: for each rule, whether it matched and the values it saw.",
    responses=_INVALID,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "user_id": "u-42",
                        "placement": "home_hero",
                        "context": {"device": "mobile", "referrer": "https://instagram.com/x"},
                    },
                }
            },
        }
    },
)
async def test_rules(request: Request, engine: EngineDep) -> JSON:
    body = await _body(request, engine)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", field="body", code="invalid_body")
    return JSON(await engine.test_rules(body))


@router.post("/v1/rules/rollback", summary="Reactivate an earlier rule set version")
async def rollback_rules(request: Request, engine: EngineDep) -> JSON:
    body: Any = {}
    if (await request.body()).strip():
        body = await _body(request, engine)
    if not isinstance(body, dict) or not isinstance(body.get("version", ""), str):
        raise InvalidInput(
            'expected {"version": "v3"} (or no body for the previous one)', field="version"
        )
    return JSON(await engine.rollback_rules(body.get("version")))


@router.get("/v1/rules/versions", summary="Every rule set version")
async def rule_versions(engine: EngineDep) -> JSON:
    return JSON({"active": engine.rules.version, "versions": await engine.rules.versions()})


@router.get("/v1/rules/stats", summary="Per rule: evaluations, fires, errors, last fired")
async def rule_stats(engine: EngineDep) -> JSON:
    return JSON({"version": engine.rules.version, "rules": await engine.rule_stats.read()})


@router.get(
    "/v1/actions",
    summary="Actions emitted by rules, from a cursor",
    description="Pull the outbox: `after` is the `next` of the previous answer (absent: from "
    "the oldest kept). Each action: `{id, rule_id, user_id, type, at, payload}`; ids are "
    "unique and stable, so a consumer can dedupe.",
)
async def actions(
    engine: EngineDep,
    after: str | None = Query(None, description="Cursor: the previous answer's `next`."),
    limit: int = Query(100, ge=1, le=1000),
) -> JSON:
    return JSON(await engine.actions(after, limit))
