"""Dependencies shared by the routes (overridable in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relevo.engine import Engine


async def get_engine(request: Request) -> Engine:
    """Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, which
    cost about a tenth of an API process's CPU per request (measured with bench.load)."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]
