"""Point-in-time profile features for training: the past only, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from relevo.features.profile import FeatureParams
from relevo.models.profile_features import FEATURE_NAMES, ProfileReplay, ReplayedPairFeatures

T0 = 1_767_225_600_000


def test_features_for_time_t_never_see_events_at_t() -> None:
    records = [
        {"event_id": "1", "type": "view", "user_id": "u", "item_id": "a", "timestamp": T0,
         "category": "shoes"},
        {"event_id": "2", "type": "view", "user_id": "u", "item_id": "b", "timestamp": T0 + 5,
         "category": "books"},
        # In the same millisecond as "2": it may be on the other side of a split.
        {"event_id": "3", "type": "purchase", "user_id": "u", "item_id": "c",
         "timestamp": T0 + 5, "category": "books"},
    ]  # fmt: skip
    replay = ProfileReplay(records, FeatureParams())
    features = ReplayedPairFeatures(
        replay,
        np.array(["u"]),
        np.array(["a", "b", "c"]),
        ["shoes", "books", "books"],
    )
    row = features(np.array([0, 0]), np.array([T0 + 5, T0 + 5]), np.array([1, 2]))
    named = dict(zip(FEATURE_NAMES, row[0].tolist(), strict=True))
    assert named["profile_events_log"] == pytest.approx(np.log1p(1))  # only event "1"
    assert named["profile_purchases"] == 0
    assert named["profile_category_affinity"] == 0.0  # books: nothing before T0 + 5
    later = features(np.array([0]), np.array([T0 + 6]), np.array([2]))
    assert dict(zip(FEATURE_NAMES, later[0].tolist(), strict=True))["profile_purchases"] == 1
    assert replay.profile_at("nobody", T0) is None
