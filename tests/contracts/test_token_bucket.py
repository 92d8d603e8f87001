"""Contract: the token bucket (per-key rate limits), specified once for every backend."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relevo.store import bucket
from relevo.store.base import BucketGrant, Store

NOW = 1_767_225_600_000
_keys = itertools.count()


async def test_a_new_bucket_is_full_then_refuses_with_the_wait(store: Store) -> None:
    grants = [await store.take_tokens("b", 1, rate_per_s=2, burst=3, now_ms=NOW) for _ in range(4)]
    assert [g.allowed for g in grants] == [True, True, True, False]
    assert [g.remaining for g in grants] == [2, 1, 0, 0]
    assert grants[-1].retry_after_ms == 500  # one token at 2 per second
    assert grants[0].retry_after_ms == 0


async def test_tokens_come_back_at_the_rate_and_never_above_the_burst(store: Store) -> None:
    for _ in range(3):
        await store.take_tokens("b", 1, rate_per_s=2, burst=3, now_ms=NOW)
    assert not (await store.take_tokens("b", 1, rate_per_s=2, burst=3, now_ms=NOW + 499)).allowed
    assert (await store.take_tokens("b", 1, rate_per_s=2, burst=3, now_ms=NOW + 500)).allowed
    later = await store.take_tokens("b", 1, rate_per_s=2, burst=3, now_ms=NOW + 3_600_000)
    assert later == BucketGrant(True, 2, 0)


async def test_a_refusal_takes_nothing(store: Store) -> None:
    await store.take_tokens("b", 2, rate_per_s=1, burst=3, now_ms=NOW)
    refused = await store.take_tokens("b", 2, rate_per_s=1, burst=3, now_ms=NOW)
    assert refused == BucketGrant(False, 1, 1000)
    assert (await store.take_tokens("b", 1, rate_per_s=1, burst=3, now_ms=NOW)).allowed


async def test_time_never_runs_backwards_for_a_bucket(store: Store) -> None:
    await store.take_tokens("b", 1, rate_per_s=1, burst=1, now_ms=NOW)
    # a process whose clock lags must not refill the bucket from the past
    assert not (await store.take_tokens("b", 1, rate_per_s=1, burst=1, now_ms=NOW - 5000)).allowed
    assert (await store.take_tokens("b", 1, rate_per_s=1, burst=1, now_ms=NOW + 1000)).allowed


async def test_buckets_are_independent(store: Store) -> None:
    await store.take_tokens("a", 1, rate_per_s=1, burst=1, now_ms=NOW)
    assert not (await store.take_tokens("a", 1, rate_per_s=1, burst=1, now_ms=NOW)).allowed
    assert (await store.take_tokens("b", 1, rate_per_s=1, burst=1, now_ms=NOW)).allowed


async def test_the_bucket_expires_when_it_would_be_full(store: Store) -> None:
    await store.take_tokens("b", 3, rate_per_s=2, burst=4, now_ms=NOW)
    left = await store.ttl_ms("b")
    assert left is not None
    assert 0 < left <= 1500


async def test_concurrent_takes_never_overspend(store: Store) -> None:
    grants = await asyncio.gather(
        *[store.take_tokens("b", 1, rate_per_s=1, burst=10, now_ms=NOW) for _ in range(40)]
    )
    assert sum(g.allowed for g in grants) == 10


async def test_a_cost_outside_one_to_burst_is_a_programming_error(store: Store) -> None:
    with pytest.raises(ValueError, match="cost"):
        await store.take_tokens("b", 4, rate_per_s=1, burst=3, now_ms=NOW)
    with pytest.raises(ValueError, match="cost"):
        await store.take_tokens("b", 0, rate_per_s=1, burst=3, now_ms=NOW)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.integers(1, 50),
    burst=st.integers(1, 20),
    steps=st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 20)), min_size=1, max_size=25),
)
async def test_every_backend_answers_like_the_reference(
    store: Store, rate: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    key = f"h{next(_keys)}"
    state, now = None, NOW
    for advance, cost in steps:
        now += advance
        cost = min(cost, burst)
        expected, state, _ = bucket.take(state, cost, rate, burst, now)
        assert await store.take_tokens(key, cost, rate, burst, now) == expected
