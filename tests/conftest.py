"""Fixtures shared by every test folder.

The Redis backend is tested against a real `redis-server` that this session starts
on a free port; each test gets its own key prefix, so tests never see each other.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.store.base import Store
from relevo.store.memory import MemoryStore
from relevo.store.redis import RedisStore
from tests.support.servers import RedisClusterServers, RedisServer

# No per-example deadline: on a shared 2-core CI machine one slow example is load, not a
# regression, and the property tests assert results, not speed (benchmarks do that).
hypothesis_settings.register_profile("relevo", deadline=None)
hypothesis_settings.load_profile("relevo")

BACKENDS = ["embedded", "redis"]
STORES = [*BACKENDS, "redis-cluster"]
"""The contract suite also runs on a 3-master Redis Cluster."""
_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop, pause or restart."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def unique_prefix() -> str:
    return f"t{next(_prefixes)}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_767_225_600_000)  # 2026-01-01T00:00:00Z


@dataclass
class StoreHarness:
    store: Store
    backend: str
    clock: ManualClock


@pytest.fixture(params=STORES)
async def harness(
    request: pytest.FixtureRequest, clock: ManualClock
) -> AsyncIterator[StoreHarness]:
    """A store of each backend: the contract suite runs once per backend (and on a cluster)."""
    if request.param == "embedded":
        yield StoreHarness(MemoryStore(clock), "embedded", clock)
        return
    servers: RedisServer | RedisClusterServers = request.getfixturevalue(
        "redis_cluster" if request.param == "redis-cluster" else "redis_server"
    )
    store = RedisStore(servers.url, prefix=unique_prefix())
    try:
        yield StoreHarness(store, request.param, clock)
    finally:
        await store.close()


@pytest.fixture
def store(harness: StoreHarness) -> Store:
    return harness.store


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for an engine on each backend, isolated per test."""
    if request.param == "embedded":
        return Settings(data_dir=tmp_path / "data")
    server: RedisServer = request.getfixturevalue("redis_server")
    return Settings(
        store=server.url,
        redis_prefix=unique_prefix(),
        data_dir=tmp_path / "data",
    )
