"""Co-visitation, trending and attribute neighbours on the cluster (tests from tests/live)."""

from tests.live.conftest import engine  # noqa: F401
from tests.live.test_live_models import (  # noqa: F401
    test_a_new_item_has_attribute_neighbours_from_its_first_upsert,
    test_a_redelivered_event_counts_once,
    test_sessions_showing_a_then_b_make_b_a_neighbour_of_a,
    test_trending_decays_so_recent_activity_wins,
)
