"""Ranker features from the profile: one definition for training and for serving.

Serving reads a live user's profile as `relevo.features.profile.render` returns it.
Training gets the *same* profile as of a past moment by replaying the archive
through the same feature code (`apply_event` in time order, then `render` at that
moment: `ProfileReplay`). `pair_features` turns either into numbers, so the
hybrid's ranker learns and scores on one definition: no train/serve skew by
construction.

Only what `apply_event` computes is used (counts, RFM, sessions, affinities,
recent items, cart): segments and attributes set by rules are left out, because
rules change over time and a replay with today's rules would not be the past.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from relevo.events import profile_key
from relevo.features.profile import (
    MAX_RECENT_ITEMS,
    FeatureParams,
    ProfileState,
    apply_event,
    render,
)
from relevo.models.interactions import FloatArray, IdArray, IntArray

USER_FEATURES: tuple[str, ...] = (
    "events_log",
    "views_1h",
    "views_24h",
    "views_30d",
    "clicks_24h",
    "carts_30d",
    "purchases",
    "recency_days",
    "monetary_log",
    "sessions",
    "session_events",
    "cart_size",
)
PAIR_FEATURES: tuple[str, ...] = (
    "category_affinity",
    "category_affinity_share",
    "category_affinity_rank",
    "category_views_24h",
    "category_views_30d",
    "in_cart",
    "recent_position",
)
FEATURE_NAMES: tuple[str, ...] = tuple(f"profile_{n}" for n in USER_FEATURES + PAIR_FEATURES)
"""Column names, in the order `pair_features` returns them."""


def _window(counts: Mapping[str, Any], kind: str, window: str) -> float:
    return float(counts.get(kind, {}).get(window, 0))


def user_vector(profile: Mapping[str, Any]) -> list[float]:
    """The user part of the features (see `USER_FEATURES`)."""
    counts = profile.get("counts", {})
    rfm = profile.get("rfm", {})
    session = profile.get("session") or {}
    recency = rfm.get("recency_days")
    return [
        math.log1p(float(profile.get("events", 0))),
        _window(counts, "view", "1h"),
        _window(counts, "view", "24h"),
        _window(counts, "view", "30d"),
        _window(counts, "click", "24h"),
        _window(counts, "add_to_cart", "30d"),
        float(rfm.get("frequency", 0)),
        math.nan if recency is None else float(recency),
        math.log1p(max(float(rfm.get("monetary", 0.0)), 0.0)),
        float(session.get("count", 0)),
        float(session.get("events", 0)),
        float(len(profile.get("cart", ()))),
    ]


def pair_features(
    profile: Mapping[str, Any] | None,
    item_ids: Sequence[str],
    categories: Sequence[str | None],
) -> FloatArray:
    """Features of (this user, each item): shape ``(len(item_ids), len(FEATURE_NAMES))``.

    `categories[j]` is the category of `item_ids[j]` (None when unknown: its
    category features are NaN, which LightGBM treats as missing). No profile at
    all gives NaN everywhere.

    >>> profile = {"events": 3, "counts": {"view": {"1h": 2, "24h": 3, "30d": 3}},
    ...            "affinities": {"shoes": 3.0, "books": 1.0}, "recent_items": ["a"]}
    >>> row = pair_features(profile, ["b"], ["shoes"])[0]
    >>> dict(zip(FEATURE_NAMES, row.tolist()))["profile_category_affinity_share"]
    0.75
    """
    out = np.full((len(item_ids), len(FEATURE_NAMES)), np.nan, dtype=np.float32)
    if profile is None or not len(item_ids):
        return out
    n_user = len(USER_FEATURES)
    out[:, :n_user] = user_vector(profile)
    affinities: Mapping[str, float] = profile.get("affinities", {})
    total = sum(affinities.values())
    rank = {category: position for position, category in enumerate(affinities)}
    views = profile.get("category_counts", {}).get("view", {})
    in_cart = {line["item_id"] for line in profile.get("cart", ())}
    recent = {item: position for position, item in enumerate(profile.get("recent_items", ()))}
    for row, (item, category) in enumerate(zip(item_ids, categories, strict=True)):
        pair = out[row, n_user:]
        if category is not None:
            affinity = float(affinities.get(category, 0.0))
            pair[0] = affinity
            pair[1] = affinity / total if total > 0 else 0.0
            pair[2] = rank.get(category, len(rank))
            pair[3] = _window(views, category, "24h")
            pair[4] = _window(views, category, "30d")
        pair[5] = float(item in in_cart)
        pair[6] = recent.get(item, MAX_RECENT_ITEMS)
    return out


class ProfileReplay:
    """Point-in-time profiles: each user's events replayed through `apply_event`.

    `records` are event records (as in the log and the archive) in time order.
    Asking for one user at increasing times continues the same replay, so the
    hybrid's two cut points per user cost one pass over the user's events.
    """

    def __init__(self, records: Iterable[dict[str, Any]], params: FeatureParams) -> None:
        self.params = params
        self.by_user: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            self.by_user.setdefault(profile_key(record), []).append(record)
        self._cursor: dict[str, tuple[ProfileState, int, int]] = {}

    def state_at(self, user: str, at_ms: int) -> ProfileState | None:
        """The user's profile state with every event at or before `at_ms` folded in."""
        events = self.by_user.get(user)
        if not events:
            return None
        state, position, last = self._cursor.get(user, (ProfileState(user_id=user), 0, -1))
        if at_ms < last:  # asked further back than before: start again
            state, position = ProfileState(user_id=user), 0
        while position < len(events) and events[position]["timestamp"] <= at_ms:
            apply_event(state, events[position], self.params)
            position += 1
        self._cursor[user] = (state, position, at_ms)
        return state if state.events else None

    def profile_at(self, user: str, at_ms: int) -> dict[str, Any] | None:
        """The rendered profile as it was at `at_ms` (None before the user's first event)."""
        state = self.state_at(user, at_ms)
        return None if state is None else render(state, at_ms, self.params)


@dataclass
class ReplayedPairFeatures:
    """The hybrid's `PairFeatures` for training: point-in-time profiles from the archive.

    `user_ids[u]` / `item_ids[i]` map the model's dense indices to external ids;
    `categories[i]` is item i's category (or None).

    The profile for time `t` (a user's last interaction before a cut) folds in the
    events *strictly before* `t`: events at exactly `t` may be on either side of a
    cut (splits are by position, and many datasets have several events in one
    second), so including them would leak labels into features.
    """

    replay: ProfileReplay
    user_ids: IdArray
    item_ids: IdArray
    categories: Sequence[str | None]
    names: tuple[str, ...] = FEATURE_NAMES

    def __call__(self, users: IntArray, at_ms: IntArray, items: IntArray) -> FloatArray:
        out = np.full((len(users), len(self.names)), np.nan, dtype=np.float32)
        for start, stop in _runs(users):
            user = str(self.user_ids[users[start]])
            at = int(at_ms[start])
            state = self.replay.state_at(user, at - 1)
            profile = None if state is None else render(state, at, self.replay.params)
            block = items[start:stop]
            out[start:stop] = pair_features(
                profile,
                [str(self.item_ids[i]) for i in block],
                [self.categories[i] for i in block],
            )
        return out


@dataclass
class LivePairFeatures:
    """The hybrid's `PairFeatures` at serving time: one live profile, rendered now."""

    profile: Mapping[str, Any] | None
    item_ids: IdArray
    categories: Sequence[str | None]
    names: tuple[str, ...] = FEATURE_NAMES

    def __call__(self, users: IntArray, at_ms: IntArray, items: IntArray) -> FloatArray:
        return pair_features(
            self.profile,
            [str(self.item_ids[i]) for i in items],
            [self.categories[i] for i in items],
        )


def _runs(values: IntArray) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal consecutive values."""
    if not len(values):
        return []
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [len(values)]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))
