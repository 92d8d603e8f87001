"""Contract: counters and periodic (bucketed) counters."""

from __future__ import annotations

from relevo.store.base import Store

MINUTE = 60_000


async def test_counter_starts_at_zero_and_increments(store: Store) -> None:
    assert await store.counter("c") == 0
    assert await store.incr("c") == 1
    assert await store.incr("c", 5) == 6
    assert await store.incr("c", -2) == 4
    assert await store.counter("c") == 4


async def test_periodic_sum_counts_whole_buckets_in_range(store: Store) -> None:
    base = 1_000 * MINUTE
    await store.periodic_add(
        [
            ("p", base, 1),
            ("p", base + 30_000, 2),
            ("p", base + MINUTE, 4),
            ("p", base + 5 * MINUTE, 8),
        ],
        bucket_ms=MINUTE,
        keep_ms=60 * MINUTE,
    )
    assert await store.periodic_sum("p", base, base + MINUTE - 1, MINUTE) == 3
    # a range touching a bucket counts all of it
    assert await store.periodic_sum("p", base + 59_000, base + MINUTE, MINUTE) == 7
    assert await store.periodic_sum("p", base, base + 10 * MINUTE, MINUTE) == 15
    assert await store.periodic_sum("p", base + 2 * MINUTE, base + 4 * MINUTE, MINUTE) == 0
    assert await store.periodic_sum("missing", base, base + MINUTE, MINUTE) == 0


async def test_periodic_counter_forgets_buckets_older_than_kept(store: Store) -> None:
    base = 1_000 * MINUTE
    await store.periodic_add([("p", base, 1)], bucket_ms=MINUTE, keep_ms=5 * MINUTE)
    await store.periodic_add([("p", base + 3 * MINUTE, 1)], bucket_ms=MINUTE, keep_ms=5 * MINUTE)
    assert await store.periodic_sum("p", base, base, MINUTE) == 1
    await store.periodic_add([("p", base + 10 * MINUTE, 1)], bucket_ms=MINUTE, keep_ms=5 * MINUTE)
    assert await store.periodic_sum("p", base, base + 4 * MINUTE, MINUTE) == 0
    assert await store.periodic_sum("p", base, base + 10 * MINUTE, MINUTE) == 1
