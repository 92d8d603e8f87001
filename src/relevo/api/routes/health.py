"""``GET /healthz`` (public: load balancers probe it without a key)."""

from __future__ import annotations

from fastapi import APIRouter

from relevo import __version__
from relevo.api.deps import EngineDep
from relevo.api.responses import JSON
from relevo.api.security import PUBLIC

router = APIRouter(tags=["operations"], dependencies=[PUBLIC])


@router.get(
    "/healthz",
    summary="Is the store reachable and the log writable?",
    responses={503: {"description": "A dependency is down"}},
)
async def healthz(engine: EngineDep) -> JSON:
    health = await engine.health()
    health["version"] = __version__
    return JSON(health, status_code=200 if health["status"] == "ok" else 503)
