"""Workers over the partitioned log on the cluster (tests from tests/workers)."""

import pytest

from tests.support.servers import RedisClusterServers
from tests.workers.test_worker import (  # noqa: F401
    api,
    test_a_dead_workers_unacknowledged_records_are_applied_once,
    test_a_poison_record_is_parked_with_its_reason,
    test_a_worker_applies_a_removal_after_the_upserts_logged_before_it,
    test_only_partitions_read_long_enough_ago_are_searched_for_stalled_records,
    test_the_api_logs_and_a_worker_applies,
    test_two_workers_share_the_partitions,
    worker_settings,
    workers,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def worker_store(redis_cluster: RedisClusterServers) -> str:
    return redis_cluster.url
