"""Rules, timers and the outbox on the cluster (tests from tests/rules)."""

from tests.rules.conftest import engine, make_engine  # noqa: F401
from tests.rules.test_live_rules import (  # noqa: F401
    test_a_change_reaches_every_process,
    test_rollback_restores_earlier_behaviour_at_once,
    test_set_attribute_and_emit,
    test_threshold_fires_on_the_fourth_view_within_five_minutes,
)
from tests.rules.test_timers_and_webhooks import (  # noqa: F401
    test_a_purchase_cancels_it,
    test_a_restart_in_between_still_fires_exactly_once,
    test_abandoned_cart_fires_once_after_fifteen_minutes,
    test_two_processes_fire_it_once,
)
