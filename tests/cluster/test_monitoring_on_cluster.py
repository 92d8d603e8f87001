"""Monitoring on the cluster (tests from tests/monitoring): decisions and clicks counted
per placement, observed values flushed to the shared stream, one evaluation round.
(The drift statistics through the store stream run on the cluster in
tests/monitoring/test_false_alarms.py, whose `harness` includes it.)"""

from tests.monitoring.test_kpis import (  # noqa: F401
    engine,
    test_decisions_and_their_clicks_are_counted_per_placement_and_hour,
)
