"""`create_app(settings)`: the FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from relevo import __version__
from relevo.api import errors
from relevo.api.routes import (
    configuration,
    consent,
    decisions,
    events,
    health,
    items,
    models,
    monitoring,
    operations,
    recommendations,
    rules,
    sdk,
    users,
)
from relevo.api.security import default_deny
from relevo.auth import KeyRing
from relevo.clock import Clock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.events import Event, EventBatch, Item, ItemBatch, ItemRemoval
from relevo.monitoring.http import RequestMetrics
from relevo.ratelimit import RateLimiter

log = logging.getLogger(__name__)

DESCRIPTION = """
relevo answers, on every page load, what to show this visitor now, from state that
already includes the click made a moment ago. Send events to `POST /v1/events`, the
catalog to `POST /v1/items`, and read real-time profiles at `GET /v1/users/{user_id}`.

Errors always have the shape `{"error": {"code", "message", "field"?}}`.

Authentication: `Authorization: Bearer <key>`. A **write** key (safe in a web page) sends
events and consent and reads the catalog; an **admin** key does everything. 401 without
a valid key, 403 when its role is not enough, 429 (with `Retry-After`) over the key's
rate limit.
"""


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = Engine(settings, clock)
    keys = KeyRing.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not keys.enabled:
            log.warning(
                "NO API KEYS ARE SET: anyone who can reach this server can read profiles and "
                "erase users. Set RELEVO_WRITE_KEY and RELEVO_ADMIN_KEY before exposing it."
            )
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
        dependencies=[Depends(default_deny)],
    )
    app.state.engine = engine
    app.state.keys = keys
    app.state.limiter = RateLimiter(
        engine.store, engine.clock, settings.rate_limit, settings.rate_burst
    )
    errors.install(app)
    # The hottest routes first: a request is matched against the routes in this order,
    # and each route passed costs a few microseconds (decisions fifth cost 37 µs each).
    for module in (
        decisions,
        events,
        items,
        users,
        consent,
        rules,
        configuration,
        health,
        operations,
        recommendations,
        models,
        sdk,
        monitoring,
    ):
        app.include_router(module.router)
    app.include_router(items.admin_router)
    app.include_router(monitoring.public_router)
    _allow_origins(app, settings)
    # Outermost: times everything, CORS included, and tags every response with its id.
    app.add_middleware(RequestMetrics)
    _document_bodies(app)
    return app


def _allow_origins(app: FastAPI, settings: Settings) -> None:
    """CORS for the browser SDK on the sites listed in RELEVO_CORS_ORIGINS (none by default)."""
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )


def _document_bodies(app: FastAPI) -> None:
    """Add the schemas of bodies that routes parse themselves to the OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Event, EventBatch, Item, ItemBatch, ItemRemoval):
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
