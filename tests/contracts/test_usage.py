"""Contract: `usage` counts every key by kind, measures bytes and finds keys without a TTL."""

from __future__ import annotations

from relevo.store import keys
from relevo.store.base import DecayedAdd, DocWrite, KindUsage, Store
from tests.conftest import StoreHarness


async def _fill(store: Store, users: int) -> None:
    for number in range(users):
        user = f"user-{number}"
        await store.docs_write(
            [
                DocWrite(
                    keys.profile_key(user),
                    keys.profile_marks_key(user),
                    0,
                    b"x" * 50,
                    now_ms=1,
                    marks=[keys.event_mark(f"e{number}")],
                    ttl_ms=3_600_000,
                )
            ]
        )
    await store.map_incr(keys.assignments_key("user-0"), {"exp": 1}, ttl_ms=3_600_000)
    await store.map_incr(keys.exposures_key("user-0"), {"p": 1})  # no TTL: reported
    await store.set_many({keys.item_key(f"i{n}"): b"{}" for n in range(3)})
    await store.zadd(keys.ITEMS_INDEX, {"i0": 1.0})
    await store.decayed_add(
        [DecayedAdd(keys.covisitation_key("i0"), {"i1": 1.0}, at_ms=1)], 1000, 10
    )
    await store.set_many({"unknown": b"?"})


async def test_usage_counts_keys_per_kind(store: Store) -> None:
    await _fill(store, users=5)
    usage = await store.usage(sample_per_kind=2)
    kinds = usage.kinds
    assert usage.backend == store.backend
    assert kinds["profile"].keys == 5
    # marks under their own key, or inside the document (Redis): never without a TTL
    assert kinds.get("profile marks", KindUsage(keys=5)).keys == 5
    assert kinds["assignments"].keys == 1
    assert kinds["exposures"].keys == 1
    assert kinds["items"].keys == 4  # three items and the index
    assert kinds["live co-visitation"].keys in (1, 2)  # a backend may keep the landmark apart
    assert kinds["other"].keys == 1
    assert kinds["profile"].sampled == 2
    assert not kinds["profile"].exact
    assert kinds["items"].sampled == 2
    assert kinds["assignments"].exact
    for usage_of_kind in kinds.values():
        assert usage_of_kind.bytes > 0
    assert kinds["profile"].bytes > 5 * 50  # at least the values
    assert kinds["profile"].without_ttl == 0
    assert kinds.get("profile marks", KindUsage()).without_ttl == 0
    assert kinds["assignments"].without_ttl == 0
    assert kinds["exposures"].without_ttl == 1
    assert kinds["items"].without_ttl == 4


async def test_usage_sampling_everything_is_exact(store: Store) -> None:
    await _fill(store, users=3)
    usage = await store.usage(sample_per_kind=1000)
    assert all(kind.exact for kind in usage.kinds.values())
    if store.backend == "redis":
        assert usage.memory_bytes is not None
        assert usage.memory_bytes > 0
        assert usage.nodes >= 1


async def test_usage_of_an_empty_store(store: Store) -> None:
    usage = await store.usage()
    assert usage.kinds == {}


async def test_usage_reports_every_master(harness: StoreHarness) -> None:
    await harness.store.set_many({keys.item_key("i1"): b"{}"})
    usage = await harness.store.usage()
    assert usage.nodes == (3 if harness.backend == "redis-cluster" else 1)
