"""`create_app(settings)`: the FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from relevo import __version__
from relevo.api import errors
from relevo.api.routes import events, health, items, models, recommendations, rules, users
from relevo.clock import Clock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.events import Event, EventBatch, Item, ItemBatch

DESCRIPTION = """
relevo answers, on every page load, what to show this visitor now, from state that
already includes the click made a moment ago. Send events to `POST /v1/events`, the
catalog to `POST /v1/items`, and read real-time profiles at `GET /v1/users/{user_id}`.

Errors always have the shape `{"error": {"code", "message", "field"?}}`.
"""


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = Engine(settings, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="relevo",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.engine = engine
    errors.install(app)
    for module in (events, items, users, rules, health, recommendations, models):
        app.include_router(module.router)
    _document_bodies(app)
    return app


def _document_bodies(app: FastAPI) -> None:
    """Add the schemas of bodies that routes parse themselves to the OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Event, EventBatch, Item, ItemBatch):
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
