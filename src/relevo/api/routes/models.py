"""Model versions: ``GET /v1/models``, train, promote, roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from relevo.api.deps import EngineDep
from relevo.api.responses import JSON, ErrorBody, read_json
from relevo.api.security import ADMIN, RESPONSES
from relevo.errors import InvalidInput

router = APIRouter(tags=["models"], dependencies=[ADMIN], responses=RESPONSES)

_VERSION_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": {"version": "v2"}}
        }
    }
}


async def _object(request: Request, engine: EngineDep, *, required: bool) -> dict[str, Any]:
    if not required and not (await request.body()).strip():
        return {}
    body = await read_json(request, engine.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", field="body", code="invalid_body")
    return body


def _version(body: dict[str, Any], *, required: bool) -> str | None:
    version = body.get("version")
    if version is None and not required:
        return None
    if not isinstance(version, str) or not version:
        raise InvalidInput("'version' must be a version name like v3", field="version")
    return version


@router.get(
    "/v1/models",
    summary="Registered model versions",
    description="Per model name: every version with its metrics (temporal holdout), training "
    "window, data counts, creation and promotion times; `active` is the promoted version, "
    "`served` the one this process has loaded (others follow within a second).",
)
async def list_models(engine: EngineDep, name: str | None = Query(None)) -> JSON:
    return JSON({"models": await engine.model_versions(name)})


@router.post(
    "/v1/models/{name}/promote",
    summary="Serve a version",
    description="Every API process swaps to it without dropping a request: the version is "
    "loaded fully, then one reference changes. This process serves it when this returns.",
    responses={404: {"model": ErrorBody}},
    openapi_extra={"requestBody": {"required": True, **_VERSION_BODY["requestBody"]}},
)
async def promote(name: str, request: Request, engine: EngineDep) -> JSON:
    body = await _object(request, engine, required=True)
    version = _version(body, required=True)
    assert version is not None
    return JSON(await engine.promote_model(name, version))


@router.post(
    "/v1/models/{name}/rollback",
    summary="Go back to the previously promoted version",
    description="Or to `version` when given. Repeated rollbacks walk further back.",
    responses={404: {"model": ErrorBody}},
    openapi_extra=_VERSION_BODY,
)
async def rollback(name: str, request: Request, engine: EngineDep) -> JSON:
    body = await _object(request, engine, required=False)
    return JSON(await engine.rollback_model(name, _version(body, required=False)))


@router.post(
    "/v1/models/{name}/train",
    summary="Train a version from the archive",
    description="Trains in a worker process (serving keeps its latency) and registers the "
    'version with its holdout metrics; `{"promote": true}` also serves it. Answers when done.',
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": {"promote": True}}
            }
        }
    },
)
async def train(name: str, request: Request, engine: EngineDep) -> JSON:
    body = await _object(request, engine, required=False)
    promote = body.get("promote", False)
    if not isinstance(promote, bool):
        raise InvalidInput("'promote' must be true or false", field="promote")
    return JSON(await engine.train_model(name, promote=promote, in_worker=True))
