"""Contract: decayed sorted sets (live co-visitation and trending).

Scores are compared with a brute-force reference: the sum of every weight added, each
decayed from its own time to the time of the read.
"""

from __future__ import annotations

import random

import pytest

from relevo.store.base import (
    DECAY_REBASE_EXPONENT,
    DecayedAdd,
    DecayedGroup,
    DecayedRead,
    Store,
)
from tests.conftest import StoreHarness

HOUR = 3_600_000
T0 = 1_767_225_600_000
DAY = 24 * HOUR


async def top(
    store: Store, key: str, now: int, half_life: int, limit: int = 10
) -> list[tuple[str, float]]:
    [found] = await store.decayed_top([DecayedRead(key, half_life, limit)], now)
    return found


def reference(adds: list[tuple[str, float, int]], now: int, half_life: int) -> dict[str, float]:
    found: dict[str, float] = {}
    for member, weight, at in adds:
        found[member] = found.get(member, 0.0) + weight * 2.0 ** (-(now - at) / half_life)
    return found


async def test_scores_halve_every_half_life(store: Store) -> None:
    await store.decayed_add([DecayedAdd("{d}", {"a": 8.0, "b": 2.0}, T0)], HOUR, max_len=10)
    assert await top(store, "{d}", T0, HOUR) == [("a", 8.0), ("b", 2.0)]
    found = await top(store, "{d}", T0 + 2 * HOUR, HOUR)
    assert found == [("a", pytest.approx(2.0)), ("b", pytest.approx(0.5))]


async def test_adds_at_different_times_sum_their_decayed_weights(store: Store) -> None:
    await store.decayed_add([DecayedAdd("{d}", {"a": 1.0}, T0)], HOUR, max_len=10)
    await store.decayed_add([DecayedAdd("{d}", {"a": 1.0, "b": 1.5}, T0 + HOUR)], HOUR, 10)
    # A late event adds what is left of its weight.
    await store.decayed_add([DecayedAdd("{d}", {"b": 4.0}, T0 - HOUR)], HOUR, max_len=10)
    found = await top(store, "{d}", T0 + HOUR, HOUR)
    assert found == [("b", pytest.approx(1.5 + 1.0)), ("a", pytest.approx(1.5))]


async def test_groups_are_each_added_with_their_own_half_life_bound_and_expiry(
    store: Store,
) -> None:
    """`decayed_add_groups` is `decayed_add` of each group (one round trip on Redis)."""
    await store.decayed_add_groups(
        [
            DecayedGroup([DecayedAdd("{g}a", {"x": 8.0, "y": 1.0, "z": 4.0}, T0)], HOUR, 2),
            DecayedGroup([], DAY, 10),  # nothing: no call
            DecayedGroup(
                [DecayedAdd("{g}b", {"x": 8.0}, T0), DecayedAdd("{g}c", {"w": 1.0}, T0)],
                DAY,
                10,
                ttl_ms=HOUR,
            ),
        ]
    )
    later = T0 + 2 * HOUR
    assert await top(store, "{g}a", later, HOUR) == [  # its bound: the lowest left
        ("x", pytest.approx(2.0)),
        ("z", pytest.approx(1.0)),
    ]
    expected = 8.0 * 2.0 ** (-2 * HOUR / DAY)  # its own half-life
    assert await top(store, "{g}b", later, DAY) == [("x", pytest.approx(expected))]
    assert 0 < (await store.ttl_ms("{g}c") or 0) <= HOUR  # its own expiry


async def test_far_apart_adds_rebase_without_losing_precision(store: Store) -> None:
    later = T0 + (DECAY_REBASE_EXPONENT + 8) * HOUR
    await store.decayed_add([DecayedAdd("{d}", {"old": 1e9, "x": 1.0}, T0)], HOUR, max_len=10)
    await store.decayed_add([DecayedAdd("{d}", {"new": 1.0}, later)], HOUR, max_len=10)
    await store.decayed_add([DecayedAdd("{d}", {"new": 1.0}, later)], HOUR, max_len=10)
    found = await top(store, "{d}", later, HOUR)
    expected = reference([("old", 1e9, T0), ("x", 1.0, T0), ("new", 2.0, later)], later, HOUR)
    assert dict(found) == {member: pytest.approx(score) for member, score in expected.items()}
    assert [member for member, _ in found] == ["new", "old", "x"]


async def test_keeps_the_highest_members_and_orders_ties_by_member(store: Store) -> None:
    await store.decayed_add(
        [DecayedAdd("{d}", {"a": 1.0, "b": 5.0, "c": 3.0, "d": 3.0}, T0)], HOUR, max_len=3
    )
    assert await top(store, "{d}", T0, HOUR) == [("b", 5.0), ("d", 3.0), ("c", 3.0)]
    await store.decayed_add([DecayedAdd("{d}", {"e": 4.0}, T0)], HOUR, max_len=3)
    assert await top(store, "{d}", T0, HOUR, 2) == [("b", 5.0), ("e", 4.0)]


async def test_reads_several_keys_at_once(store: Store) -> None:
    await store.decayed_add(
        [DecayedAdd("{x}", {"a": 1.0}, T0), DecayedAdd("{y}", {"b": 2.0}, T0)], HOUR, max_len=5
    )
    reads = [
        DecayedRead("{y}", HOUR, 5),
        DecayedRead("{missing}", HOUR, 5),
        DecayedRead("{x}", HOUR, 0),
    ]
    assert await store.decayed_top(reads, T0) == [[("b", 2.0)], [], []]
    # Each read has its own half-life.
    reads = [DecayedRead("{x}", HOUR, 5), DecayedRead("{y}", 2 * HOUR, 5)]
    assert await store.decayed_top(reads, T0 + 2 * HOUR) == [[("a", 0.25)], [("b", 1.0)]]


async def test_removed_members_go_and_the_others_keep_their_scores(store: Store) -> None:
    adds = [
        DecayedAdd("{x}", {"a": 4.0, "b": 2.0, "c": 1.0}, T0),
        DecayedAdd("{y}", {"a": 3.0}, T0),
    ]
    await store.decayed_add(adds, HOUR, max_len=10)
    await store.decayed_remove({"{x}": ["a", "missing"], "{y}": ["a"], "{none}": ["a"]})
    found = await store.decayed_top(
        [DecayedRead("{x}", HOUR, 10), DecayedRead("{y}", HOUR, 10)], T0 + HOUR
    )
    assert found == [[("b", pytest.approx(1.0)), ("c", pytest.approx(0.5))], []]
    await store.decayed_add([DecayedAdd("{y}", {"a": 1.0}, T0 + HOUR)], HOUR, max_len=10)
    assert await top(store, "{y}", T0 + HOUR, HOUR) == [("a", pytest.approx(1.0))]  # anew


async def test_keys_expire_after_their_last_add(harness: StoreHarness) -> None:
    store = harness.store
    await store.decayed_add([DecayedAdd("{d}", {"a": 1.0}, T0)], HOUR, max_len=5, ttl_ms=60_000)
    ttl = await store.ttl_ms("{d}")
    assert ttl is not None
    assert 0 < ttl <= 60_000


async def test_matches_a_brute_force_reference_on_random_adds(store: Store) -> None:
    rng = random.Random(5)
    history: list[tuple[str, float, int]] = []
    now = T0
    for _ in range(60):
        now += rng.randrange(0, 6 * HOUR)
        at = now - rng.randrange(0, 2 * HOUR)  # some events arrive late
        weights = {rng.choice("abcdefgh"): round(rng.uniform(0.1, 5.0), 3) for _ in range(3)}
        history += [(member, weight, at) for member, weight in weights.items()]
        await store.decayed_add([DecayedAdd("{d}", weights, at)], 3 * HOUR, max_len=100)
    found = await top(store, "{d}", now, 3 * HOUR, 100)
    expected = reference(history, now, 3 * HOUR)
    assert dict(found) == {m: pytest.approx(s, rel=1e-9, abs=1e-12) for m, s in expected.items()}
    assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)


async def test_many_keys_and_members_in_one_call_match_one_call_per_key(store: Store) -> None:
    """Enough keys and members in one call that a store splits them (over scripts, over
    commands): each key ends as if added on its own, trimmed once after all its members."""
    rng = random.Random(11)
    adds = [
        DecayedAdd(
            f"{{k{k}}}",
            {f"m{rng.randrange(900)}": rng.uniform(0.1, 5.0) for _ in range(700 if k < 2 else 60)},
            T0 + rng.randrange(0, HOUR),
        )
        for k in range(30)
    ]
    await store.decayed_add(
        [DecayedAdd(add.key, {"a": 9.0, "b": 0.5}, T0) for add in adds], HOUR, 250
    )
    await store.decayed_add(adds, HOUR, max_len=250, ttl_ms=DAY)
    for add in adds:
        one = "one" + add.key
        await store.decayed_add([DecayedAdd(one, {"a": 9.0, "b": 0.5}, T0)], HOUR, 250)
        await store.decayed_add([DecayedAdd(one, add.weights, add.at_ms)], HOUR, 250, DAY)
    now = T0 + 2 * HOUR
    for add in adds:
        found = await top(store, add.key, now, HOUR, 300)
        assert len(found) == min(250, len({*add.weights, "a", "b"}))
        assert found == await top(store, "one" + add.key, now, HOUR, 300)
        assert await store.ttl_ms(add.key) is not None


async def test_stored_tops_decay_to_what_a_read_answers(store: Store) -> None:
    """`decayed_top_stored` keeps the scores as stored, with the set's landmark: decayed to
    any time they are the very numbers `decayed_top` answers then (a process keeps the
    trending sets this way, `relevo.live.shared`), across a rebase of the landmark too."""
    rng = random.Random(7)
    for step in range(6):
        at = T0 + step * 7 * HOUR  # 42 hours in all: past the rebase exponent's 32 half-lives
        weights = {f"m{rng.randrange(30)}": rng.uniform(0.1, 5.0) for _ in range(8)}
        await store.decayed_add([DecayedAdd("{d}", weights, at)], HOUR, max_len=20)
        reads = [
            DecayedRead("{d}", HOUR, 12),
            DecayedRead("{missing}", HOUR, 5),
            DecayedRead("{d}", HOUR, 0),
            DecayedRead("{d}", 2 * HOUR, 3),
        ]
        stored = await store.decayed_top_stored(reads)
        assert stored[1].landmark_ms is None
        assert stored[2].members == []
        for now in (at, at + 1, at + 5 * HOUR + 17):
            decayed = [
                top.decayed(now, read.half_life_ms) for top, read in zip(stored, reads, strict=True)
            ]
            assert decayed == await store.decayed_top(reads, now)
    assert stored[0].landmark_ms is not None
    assert stored[0].landmark_ms > T0  # rebased
