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


async def test_periodic_add_of_many_buckets_of_a_key_at_once_adds_them_in_order(
    store: Store,
) -> None:
    """One call holding a key's buckets out of order, some already out of the window and
    one far ahead, counts as those adds one call each would."""
    base = 1_000 * MINUTE
    keep = 5 * MINUTE
    entries = [
        ("p", base + 3 * MINUTE, 1),
        ("p", base, 2),
        ("q", base, 16),
        ("p", base + 3 * MINUTE, 4),
        ("p", base + 9 * MINUTE, 8),
        ("p", base + 2 * MINUTE, 32),  # out of the window of the bucket just added
        ("p", base + 30 * MINUTE, 64),  # far ahead: every earlier bucket falls out
        ("p", base + 26 * MINUTE, 128),
    ]
    await store.periodic_add(entries, bucket_ms=MINUTE, keep_ms=keep)
    assert await store.periodic_sum("p", base, base + 29 * MINUTE, MINUTE) == 128
    assert await store.periodic_sum("p", base + 30 * MINUTE, base + 30 * MINUTE, MINUTE) == 64
    assert await store.periodic_sum("q", base, base, MINUTE) == 16
    for key, ts_ms, by in entries:  # the same adds again, one call each
        await store.periodic_add([(key + "1", ts_ms, by)], bucket_ms=MINUTE, keep_ms=keep)
    for minute in range(31):
        at = base + minute * MINUTE
        for key in ("p", "q"):
            assert await store.periodic_sum(key, at, at, MINUTE) == await store.periodic_sum(
                key + "1", at, at, MINUTE
            )
