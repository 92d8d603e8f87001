"""Workers over the partitioned log on the cluster (tests from tests/workers)."""

from pathlib import Path

import pytest

from relevo.config import Settings
from tests.conftest import unique_prefix
from tests.support.servers import RedisClusterServers
from tests.workers.test_worker import (  # noqa: F401
    api,
    test_a_dead_workers_unacknowledged_records_are_applied_once,
    test_a_poison_record_is_parked_with_its_reason,
    test_the_api_logs_and_a_worker_applies,
    test_two_workers_share_the_partitions,
    workers,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def worker_settings(redis_cluster: RedisClusterServers, tmp_path: Path) -> Settings:
    return Settings(
        store=redis_cluster.url,
        redis_prefix=unique_prefix(),
        data_dir=tmp_path / "data",
        apply="worker",
        log_partitions=4,
    )
