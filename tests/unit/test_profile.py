"""The feature code: how events become a profile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.features.profile import (
    FeatureParams,
    ProfileState,
    ProfileView,
    apply_event,
    decode,
    direct_reader,
    encode,
    render,
)

T0 = 1_767_225_600_000
MIN = 60_000
PARAMS = FeatureParams()


def fold(*events: dict[str, Any]) -> ProfileState:
    state = ProfileState(user_id="u")
    for number, event in enumerate(events):
        apply_event(state, {"event_id": f"e{number}", "user_id": "u", **event}, PARAMS)
    return state


def test_counts_by_type_and_category_in_event_time() -> None:
    state = fold(
        {"type": "view", "timestamp": T0, "item_id": "a", "category": "shoes"},
        {"type": "view", "timestamp": T0 + 2 * MIN, "item_id": "b", "category": "shoes"},
        {"type": "view", "timestamp": T0 + 30 * MIN, "category": "books"},
    )
    profile = render(state, T0 + 31 * MIN, PARAMS)
    assert profile["counts"]["view"] == {"5m": 1, "1h": 3, "24h": 3, "30d": 3, "total": 3}
    assert profile["category_counts"]["view"]["shoes"]["5m"] == 0
    assert profile["category_counts"]["view"]["shoes"]["1h"] == 2
    assert profile["first_seen"]["view"] == "2026-01-01T00:00:00.000Z"
    assert profile["last_seen"]["view"] == "2026-01-01T00:30:00.000Z"


def test_sessions_split_after_inactivity() -> None:
    state = fold(
        {"type": "view", "timestamp": T0},
        {"type": "view", "timestamp": T0 + 29 * MIN},
        {"type": "view", "timestamp": T0 + 29 * MIN + 30 * MIN + 1},
    )
    session = render(state, T0 + 60 * MIN, PARAMS)["session"]
    assert session["count"] == 2
    assert session["events"] == 1
    assert session["started_at"] == "2026-01-01T00:59:00.001Z"


def test_client_session_ids_start_new_sessions() -> None:
    state = fold(
        {"type": "view", "timestamp": T0, "session_id": "a"},
        {"type": "view", "timestamp": T0 + MIN, "session_id": "a"},
        {"type": "view", "timestamp": T0 + 2 * MIN, "session_id": "b"},
    )
    session = render(state, T0 + 3 * MIN, PARAMS)["session"]
    assert (session["id"], session["events"], session["count"]) == ("b", 1, 2)


def test_cart_follows_adds_removes_and_purchases() -> None:
    state = fold(
        {"type": "add_to_cart", "timestamp": T0, "item_id": "a"},
        {"type": "add_to_cart", "timestamp": T0 + 1, "items": [{"item_id": "b", "quantity": 3}]},
        {"type": "add_to_cart", "timestamp": T0 + 2, "item_id": "a"},
        {
            "type": "remove_from_cart",
            "timestamp": T0 + 3,
            "items": [{"item_id": "b", "quantity": 1}],
        },
    )
    assert render(state, T0, PARAMS)["cart"] == [
        {"item_id": "a", "quantity": 2, "added_at": "2026-01-01T00:00:00.000Z"},
        {"item_id": "b", "quantity": 2, "added_at": "2026-01-01T00:00:00.001Z"},
    ]
    apply_event(
        state,
        {
            "event_id": "p",
            "type": "purchase",
            "timestamp": T0 + 4,
            "items": [{"item_id": "a", "quantity": 2, "price": 10.0}],
        },
        PARAMS,
    )
    assert [line["item_id"] for line in render(state, T0, PARAMS)["cart"]] == ["b"]
    apply_event(
        state, {"event_id": "q", "type": "purchase", "timestamp": T0 + 5, "value": 7.5}, PARAMS
    )
    assert render(state, T0, PARAMS)["cart"] == []


def test_rfm_from_purchases() -> None:
    state = fold(
        {
            "type": "purchase",
            "timestamp": T0,
            "items": [{"item_id": "a", "quantity": 2, "price": 10.0}],
        },
        {"type": "purchase", "timestamp": T0 + 1_000, "value": 5.25},
    )
    rfm = render(state, T0 + 1_000 + 86_400_000 * 2, PARAMS)["rfm"]
    assert rfm == {"recency_days": 2.0, "frequency": 2, "monetary": 25.25}
    assert (
        render(fold({"type": "view", "timestamp": T0}), T0, PARAMS)["rfm"]["recency_days"] is None
    )


def test_affinities_decay_by_half_life() -> None:
    state = fold(
        {"type": "purchase", "timestamp": T0, "items": [{"item_id": "a", "category": "shoes"}]},
        {"type": "view", "timestamp": T0, "category": "books"},
    )
    week = 7 * 86_400_000
    assert render(state, T0 + week, PARAMS)["affinities"] == {"shoes": 2.5, "books": 0.5}


def test_recent_items_newest_first_unique_and_bounded() -> None:
    events = [{"type": "view", "timestamp": T0 + i, "item_id": f"i{i}"} for i in range(60)]
    events.append({"type": "view", "timestamp": T0 + 100, "item_id": "i5"})
    events.append({"type": "impression", "timestamp": T0 + 200, "item_id": "shown"})
    events.append({"type": "view", "timestamp": T0 - 5, "item_id": "late"})
    recent = render(fold(*events), T0, PARAMS)["recent_items"]
    assert recent[:3] == ["i5", "i59", "i58"]
    assert len(recent) == 50
    assert "shown" not in recent
    assert "late" not in recent
    assert recent.count("i5") == 1


def test_consent_events_set_purposes() -> None:
    state = fold({"type": "consent", "timestamp": T0, "properties": {"personalization": False}})
    assert render(state, T0, PARAMS)["consent"] == {"personalization": False}


def test_state_round_trips_through_its_encoding() -> None:
    state = fold(
        {"type": "view", "timestamp": T0, "item_id": "a", "category": "c", "session_id": "s"},
        {"type": "add_to_cart", "timestamp": T0 + 1, "item_id": "a"},
    )
    assert decode(encode(state)) == state
    assert render(decode(encode(state)), T0, PARAMS) == render(state, T0, PARAMS)


KINDS = ["view", "click", "purchase"]
CATEGORIES = ["shoes", "books"]
event_lists = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(KINDS),
            "timestamp": st.integers(T0 - 40 * 24 * 60 * MIN, T0),
            "category": st.sampled_from(CATEGORIES),
        }
    ),
    max_size=12,
)
words = st.sampled_from(
    [*KINDS, *CATEGORIES, "add_to_cart", "5m", "1h", "24h", "30d", "total", "2w"]
)
paths = st.one_of(
    st.tuples(st.just("rfm"), st.sampled_from(["recency_days", "frequency", "monetary", "x"])),
    st.tuples(st.just("session"), st.sampled_from(["id", "events", "count", "started_at", "x"])),
    st.tuples(st.just("affinities"), words),
    st.tuples(st.sampled_from(["first_seen", "last_seen"]), words),
    st.tuples(st.just("counts"), words, words),
    st.tuples(st.just("category_counts"), words, words, words),
)


@settings(max_examples=300, deadline=None)
@given(events=event_lists, path=paths, later=st.integers(0, 2 * 24 * 60 * MIN))
def test_direct_readers_give_what_walking_the_view_gives(
    events: list[dict[str, Any]], path: tuple[str, ...], later: int
) -> None:
    """The rules' shortcut for windowed counters (`direct_reader`) agrees with the view."""
    view = ProfileView(fold(*events), T0 + later, PARAMS)
    missing = tuple(("missing", key) for key in path)
    reader = direct_reader(path, missing)
    assert reader is not None
    read = reader(view)
    if read is view:  # declined: the rules walk the view
        assert events == []
        return
    walked: Any = view
    for key, absent in zip(path, missing, strict=True):
        walked = walked.get(key, absent) if isinstance(walked, Mapping) else walked
        if walked is absent:
            break
    assert read == walked


def test_other_paths_walk_the_view() -> None:
    assert direct_reader(("segments",), ((),)) is None
    assert direct_reader(("counts", 0, "5m"), ((), (), ())) is None
