"""Erasure on the cluster (tests from tests/e2e)."""

from tests.e2e.test_erasure import (  # noqa: F401
    engine,
    test_erasure_is_idempotent_and_events_after_it_are_new,
    test_user_ids_with_braces_erase_only_their_own_keys,
)
