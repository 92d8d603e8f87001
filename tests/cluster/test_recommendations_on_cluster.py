"""Live recommendations on the cluster (tests from tests/serving)."""

from tests.serving.conftest import engine, make_engine  # noqa: F401
from tests.serving.test_live_serving import (  # noqa: F401
    test_a_brand_new_user_gets_a_context_aware_list,
    test_a_click_made_a_moment_ago_changes_the_next_answer,
    test_co_visitation_recommends_b_after_a_without_training,
    test_out_of_stock_items_are_never_recommended,
)
