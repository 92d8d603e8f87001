"""Engine-level suites again, on a 3-master Redis Cluster.

Why: the contract suite proves each store primitive on the cluster; these prove that
the engine only ever combines keys that share a slot (a user's keys share a hash tag,
each log partition has its own) in real flows: ingestion, rules and timers, live
models, decisions and experiments, workers. The test functions are imported from
their home suites; only the `settings` they run with changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relevo.config import Settings
from tests.conftest import unique_prefix
from tests.support.servers import RedisClusterServers

pytestmark = pytest.mark.redis


@pytest.fixture
def settings(redis_cluster: RedisClusterServers, tmp_path: Path) -> Settings:
    """Overrides the two-backend `settings`: every engine here runs on the cluster."""
    return Settings(
        store=redis_cluster.url, redis_prefix=unique_prefix(), data_dir=tmp_path / "data"
    )
