"""Decisions, experiments and flags on the cluster (tests from tests/decisions)."""

from tests.decisions.conftest import engine  # noqa: F401
from tests.decisions.test_decide import (  # noqa: F401
    test_context_rule_selects_variant_b_and_desktop_gets_a,
    test_frequency_cap_moves_on_to_the_default,
    test_items_are_filtered_diverse_and_shaped_by_rules,
    test_without_personalization_consent_the_default_is_served,
)
from tests.decisions.test_experiments import (  # noqa: F401
    test_assignment_survives_a_restart,
    test_clicks_and_purchases_are_credited_to_the_arm,
    test_stopping_takes_users_out_and_holdout_gets_the_default,
    test_thompson_allocation_favours_the_arm_that_gets_clicks,
)
from tests.decisions.test_flags import test_flags_see_the_profile  # noqa: F401
