"""Operators' views and chores (admin access): the live event feed, event statistics,
archive compaction."""

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


@router.get(
    "/v1/store/stats",
    summary="Keys and bytes per structure in the store",
    description="Counts every key by kind (profile, profile marks, assignments, items, live "
    "co-visitation, log streams, ...), measures bytes for up to `sample` keys per kind "
    "(Redis: `MEMORY USAGE`) and extrapolates to the rest, counts per-user keys without a "
    "TTL (should be 0) and reports Redis `used_memory`. It walks the whole key space: "
    "for operators, not for frequent polling.",
)
async def store_stats(
    engine: EngineDep,
    sample: int = Query(100, ge=1, le=10_000, description="Keys measured per kind."),
) -> JSON:
    return JSON(await engine.store_usage(sample))


@router.post(
    "/v1/archive/compact",
    summary="Compact the Parquet archive now",
    description="Removes erased users' rows from the Parquet files (tombstones older than "
    "`grace_seconds`) and deletes event days older than `RELEVO_EVENT_RETENTION`. It also "
    "runs every `RELEVO_COMPACT_EVERY`.",
)
async def compact_archive(
    engine: EngineDep,
    grace_seconds: int = Query(300, ge=0, le=86_400, description="Leave younger tombstones."),
) -> JSON:
    report = await engine.compact(grace_ms=grace_seconds * 1000)
    return JSON(report.to_dict())
