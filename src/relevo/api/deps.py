"""Dependencies shared by the routes (overridable in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relevo.engine import Engine


def engine_of(request: Request) -> Engine:
    """The engine serving `request` (direct routes read it without a dependency)."""
    engine: Engine = request.app.state.engine
    return engine


async def get_engine(request: Request) -> Engine:
    """Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, which
    cost about a tenth of an API process's CPU per request (measured with bench.load)."""
    return engine_of(request)


EngineDep = Annotated[Engine, Depends(get_engine)]
