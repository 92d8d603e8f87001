"""``GET /healthz`` and ``GET /v1/stats``."""

from __future__ import annotations

from fastapi import APIRouter

from relevo import __version__
from relevo.api.deps import EngineDep
from relevo.api.responses import JSON

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Is the store reachable and the log writable?",
    responses={503: {"description": "A dependency is down"}},
)
async def healthz(engine: EngineDep) -> JSON:
    health = await engine.health()
    health["version"] = __version__
    return JSON(health, status_code=200 if health["status"] == "ok" else 503)


@router.get("/v1/stats", summary="Events by type: totals and recent windows")
async def stats(engine: EngineDep) -> JSON:
    return JSON(await engine.stats())
