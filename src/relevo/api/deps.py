"""Dependencies shared by the routes (overridable in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from relevo.engine import Engine
from relevo.events import ID_MAX_LENGTH


def engine_of(request: Request) -> Engine:
    """The engine serving `request` (direct routes read it without a dependency)."""
    engine: Engine = request.app.state.engine
    return engine


async def get_engine(request: Request) -> Engine:
    """Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, which
    cost about a tenth of an API process's CPU per request (measured with bench.load)."""
    return engine_of(request)


EngineDep = Annotated[Engine, Depends(get_engine)]

PathId = Annotated[
    str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$")
]
"""A user or item id in a path: what `relevo.events.Id` accepts (no control characters)."""
