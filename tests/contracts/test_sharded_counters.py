"""Contract: global counters spread over shards (no hot slot) read back as one."""

from __future__ import annotations

from redis.crc import key_slot

from relevo.store import keys, sharded
from relevo.store.base import Store


async def test_increments_spread_over_shards_and_read_back_summed(store: Store) -> None:
    for n in range(200):
        await sharded.incr(store, "experiment:e:stats", f"user-{n}", {"a|exposures": 1})
    await sharded.incr(store, "experiment:e:stats", "user-0", {"a|clicks": 2})
    assert await sharded.read(store, "experiment:e:stats") == {"a|exposures": 200, "a|clicks": 2}
    used = set(await store.keys_with_prefix("experiment:e:stats#"))
    assert len(used) == sharded.SHARDS  # 200 users reach every shard


async def test_a_counter_written_before_sharding_still_counts(store: Store) -> None:
    await store.map_incr("placement:p:stats", {"A|exposures": 5})
    await sharded.incr(store, "placement:p:stats", "someone", {"A|exposures": 1})
    assert await sharded.read(store, "placement:p:stats") == {"A|exposures": 6}


def test_the_shards_of_hot_structures_sit_on_different_slots() -> None:
    counters = {key_slot(k.encode()) for k in sharded.all_keys("experiment:e:stats")[1:]}
    trending = {key_slot(k.encode()) for k in keys.trending_shard_keys()}
    assert len(counters) == sharded.SHARDS
    assert len(trending) == keys.TRENDING_SHARDS
    # an item always lands in the same trending shard
    assert keys.trending_overall_key("sho-001") == keys.trending_overall_key("sho-001")
