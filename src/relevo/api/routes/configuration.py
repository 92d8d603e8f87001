"""Admin configuration: ``/v1/placements``, ``/v1/experiments``, ``/v1/flags/config``.

Each is a versioned set (see `relevo.versions`): ``PUT`` of the whole set or of one
entry makes a new immutable version (none when nothing changed), and every API
process follows it within a second.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from relevo.api.deps import EngineDep
from relevo.api.responses import JSON, read_json
from relevo.api.security import ADMIN, RESPONSES
from relevo.engine import Engine
from relevo.errors import InvalidInput

router = APIRouter(tags=["configuration"], dependencies=[ADMIN], responses=RESPONSES)


async def _object(request: Request, engine: Engine) -> dict[str, Any]:
    body = await read_json(request, engine.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", field="body", code="invalid_body")
    return body


def _named(body: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    if body.get(key, value) != value:
        raise InvalidInput(f"the body's {key} {body[key]!r} differs from the path's", field=key)
    return {**body, key: value}


@router.get("/v1/placements", summary="The active placements")
async def get_placements(engine: EngineDep) -> JSON:
    return JSON(await engine.placements.spec())


@router.put("/v1/placements", summary="Replace every placement")
async def put_placements(request: Request, engine: EngineDep) -> JSON:
    return JSON(await engine.put_config("placements", await _object(request, engine)))


@router.put("/v1/placements/{placement_id}", summary="Create or replace one placement")
async def put_placement(placement_id: str, request: Request, engine: EngineDep) -> JSON:
    body = _named(await _object(request, engine), "id", placement_id)
    return JSON(await engine.put_one("placements", body))


@router.get("/v1/experiments", summary="Every experiment")
async def get_experiments(engine: EngineDep) -> JSON:
    return JSON(await engine.experiments.spec())


@router.put("/v1/experiments/{experiment_id}", summary="Create or replace one experiment")
async def put_experiment(experiment_id: str, request: Request, engine: EngineDep) -> JSON:
    body = _named(await _object(request, engine), "id", experiment_id)
    return JSON(await engine.put_one("experiments", body))


@router.get(
    "/v1/experiments/{experiment_id}",
    summary="An experiment and its results",
    description="Per arm: users, exposures, CTR, conversion rate and revenue per user with "
    "confidence intervals; against control: two-proportion z-tests, Welch's t-test, "
    "always-valid (mSPRT) p-values safe to peek at, the probability to beat control; and "
    "the sample-ratio-mismatch check (flagged at p < 0.001).",
)
async def get_experiment(experiment_id: str, engine: EngineDep) -> JSON:
    return JSON(await engine.experiment_results(experiment_id))


@router.post("/v1/experiments/{experiment_id}/start", summary="Start an experiment")
async def start_experiment(experiment_id: str, engine: EngineDep) -> JSON:
    return JSON(await engine.set_experiment_status(experiment_id, "running"))


@router.post("/v1/experiments/{experiment_id}/stop", summary="Stop an experiment")
async def stop_experiment(experiment_id: str, engine: EngineDep) -> JSON:
    return JSON(await engine.set_experiment_status(experiment_id, "stopped"))


@router.get("/v1/flags/config", summary="The flags' definitions")
async def get_flags(engine: EngineDep) -> JSON:
    return JSON(await engine.flags.spec())


@router.put("/v1/flags", summary="Replace every flag")
async def put_flags(request: Request, engine: EngineDep) -> JSON:
    return JSON(await engine.put_config("flags", await _object(request, engine)))
