"""Promote and roll back while clients are asking: no request fails, the version switches.

Real `relevo serve` processes (two on Redis, sharing state, so the second one must
follow a promotion made through the first), real concurrent HTTP clients.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from tests.serving.conftest import with_traffic
from tests.support.polling import wait_until
from tests.support.servers import RelevoServer

CLIENTS = 4


@dataclass
class Answer:
    server: int
    sent: float
    status: int
    version: str | None


@dataclass
class Load:
    """Clients asking for recommendations back to back, round robin over the servers."""

    urls: list[str]
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, client_number: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                server = (client_number + n) % len(self.urls)
                sent = time.monotonic()
                response = client.get(
                    self.urls[server] + "/v1/recommendations",
                    params={"user_id": f"shopper-{n % 20}", "k": 5},
                )
                version = response.json()["model"]["version"] if response.is_success else None
                with self.lock:
                    self.answers.append(Answer(server, sent, response.status_code, version))
                n += 1

    def since(self, moment: float, server: int) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.sent >= moment and a.server == server]


def serves(load: Load, moment: float, server: int, version: str) -> bool:
    """The server answered with `version` to requests sent after `moment`, lately only."""
    answers = load.since(moment, server)
    return len(answers) >= 5 and all(a.version == version for a in answers[-5:])


async def two_versions(settings: Settings, clock: ManualClock) -> None:
    """Traffic in the archive, two trained versions, v1 promoted: then the engine stops."""
    engine = Engine(settings, clock)
    await engine.start(background=False)
    await with_traffic(engine, clock, users=20)
    await engine.train_model("popularity", promote=True)
    await engine.train_model("popularity")
    await engine.stop()


@pytest.mark.slow
def test_promote_and_rollback_under_concurrent_requests(
    settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"serving_model": "popularity"})
    asyncio.run(two_versions(settings, clock))
    env = {"RELEVO_DATA_DIR": str(settings.data_dir), "RELEVO_SERVING_MODEL": "popularity",
           "RELEVO_STORE": settings.store, "RELEVO_REDIS_PREFIX": settings.redis_prefix,
           "RELEVO_LOG_LEVEL": "warning"}  # fmt: skip
    count = 2 if settings.is_redis else 1
    servers = [RelevoServer(env, tmp_path / f"serve-{n}.log").start() for n in range(count)]
    load = Load([server.url for server in servers])
    clients = [threading.Thread(target=load.run, args=(n,)) for n in range(CLIENTS)]
    try:
        for thread in clients:
            thread.start()
        start = time.monotonic()
        for server in range(count):
            wait_until(lambda s=server: serves(load, start, s, "v1"), timeout=30)

        promoted = httpx.post(
            servers[0].url + "/v1/models/popularity/promote", json={"version": "v2"}, timeout=60
        )
        assert promoted.json() == {"name": "popularity", "version": "v2", "previous": "v1"}
        after_promotion = time.monotonic()
        for server in range(count):  # the promoting process at once, the other within seconds
            wait_until(lambda s=server: serves(load, after_promotion, s, "v2"), timeout=30)
        assert {a.version for a in load.since(after_promotion, 0)} == {"v2"}

        rolled_back = httpx.post(servers[-1].url + "/v1/models/popularity/rollback", timeout=60)
        assert rolled_back.json() == {"name": "popularity", "version": "v1", "previous": "v2"}
        after_rollback = time.monotonic()
        for server in range(count):
            wait_until(lambda s=server: serves(load, after_rollback, s, "v1"), timeout=30)
        assert {a.version for a in load.since(after_rollback, count - 1)} == {"v1"}
    finally:
        load.stop.set()
        for thread in clients:
            thread.join(timeout=30)
        for server in servers:
            server.stop()
    statuses = {a.status for a in load.answers}
    assert statuses == {200}, f"failed requests: {[a for a in load.answers if a.status != 200][:5]}"
    versions = [a.version for a in load.answers]
    assert versions.count("v1") > 10
    assert versions.count("v2") > 10
