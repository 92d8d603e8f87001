"""An API client per backend, with a way to fingerprint everything the store holds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relevo.api.app import create_app
from relevo.config import Settings
from relevo.engine import Engine
from relevo.store.memory import MemoryStore
from tests.conftest import BACKENDS, unique_prefix
from tests.support.servers import RedisServer


@dataclass
class Api:
    client: TestClient
    engine: Engine
    fingerprint: Callable[[], str]


def make_settings(
    backend: str, data_dir: Path, request: pytest.FixtureRequest, **extra: object
) -> Settings:
    if backend == "embedded":
        return Settings(data_dir=data_dir, **extra)  # type: ignore[arg-type]
    server: RedisServer = request.getfixturevalue("redis_server")
    return Settings(store=server.url, redis_prefix=unique_prefix(), data_dir=data_dir, **extra)  # type: ignore[arg-type]


def fingerprint_of(
    engine: Engine, settings: Settings, request: pytest.FixtureRequest
) -> Callable[[], str]:
    """A digest of every key and value of the store, and of the event log."""
    if isinstance(engine.store, MemoryStore):
        memory = engine.store
        log_path = settings.data_dir / "log.sqlite3"

        def embedded() -> str:
            import sqlite3

            with sqlite3.connect(log_path) as db:
                rows = db.execute("SELECT seq, body FROM log ORDER BY seq").fetchall()
            return hashlib.sha256(memory.dump() + repr(rows).encode()).hexdigest()

        return embedded
    server: RedisServer = request.getfixturevalue("redis_server")
    client = server.client()

    def redis_state() -> str:
        digest = hashlib.sha256()
        for key in sorted(client.scan_iter(match=settings.redis_prefix + ":*", count=1000)):
            digest.update(key + b"=" + (client.dump(key) or b""))
        return digest.hexdigest()

    return redis_state


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(
        request.param, tmp_path_factory.mktemp("data"), request, demo_catalog=True
    )
    app = create_app(settings)
    with TestClient(app) as client:
        engine: Engine = app.state.engine
        yield Api(client, engine, fingerprint_of(engine, settings, request))
