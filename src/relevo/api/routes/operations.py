"""Operators' views (admin access): the live event feed and event statistics."""

from __future__ import annotations

from fastapi import APIRouter, Query

from relevo.api.deps import EngineDep
from relevo.api.responses import JSON
from relevo.api.security import ADMIN, RESPONSES

router = APIRouter(tags=["operations"], dependencies=[ADMIN], responses=RESPONSES)


@router.get("/v1/events/recent", summary="The latest events received (a live debugger)")
async def recent_events(engine: EngineDep, limit: int = Query(20, ge=1, le=100)) -> JSON:
    return JSON({"events": await engine.recent_events(limit)})


@router.get("/v1/stats", summary="Events by type: totals and recent windows")
async def stats(engine: EngineDep) -> JSON:
    return JSON(await engine.stats())
