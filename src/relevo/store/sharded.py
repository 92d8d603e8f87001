"""Global counters spread over several keys, so that no Redis Cluster slot is hot.

Why: an experiment's or a placement's counters are incremented by every decision and
every credited click of every user. In one hash they would all land on one slot, one
Redis Cluster master, one core. Here each increment goes to one of `SHARDS` hashes
chosen by a stable hash of what spreads the load (the user id), and a read sums all of
them: reads are rare (reports, and bandits through a one-second cache), writes are not.

The unsharded key itself is still read and summed, so counters written before the
sharding keep counting.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Mapping

from relevo.store.base import MapIncr, Store

SHARDS = 8


def shard_of(spread_by: str, shards: int = SHARDS) -> int:
    """A stable shard number (crc32: the same in every process and release)."""
    return zlib.crc32(spread_by.encode()) % shards


def shard_key(key: str, shard: int) -> str:
    """`key#<shard>`: no braces, so each shard hashes to its own slot."""
    return f"{key}#{shard}"


def all_keys(key: str, shards: int = SHARDS) -> list[str]:
    """Every key a sharded counter may live in, the legacy unsharded one first."""
    return [key, *(shard_key(key, shard) for shard in range(shards))]


async def incr(store: Store, key: str, spread_by: str, increments: Mapping[str, int]) -> None:
    """Add `increments` to the counter `key`, in the shard of `spread_by`."""
    await store.map_incr(shard_key(key, shard_of(spread_by)), increments)


def increment(key: str, spread_by: str, increments: Mapping[str, int]) -> MapIncr:
    """What `incr` writes, for a `Store.write_many` of several writes at once."""
    return MapIncr(shard_key(key, shard_of(spread_by)), increments)


async def read(store: Store, key: str) -> dict[str, int]:
    """The counter's fields, summed over its shards."""
    parts = await asyncio.gather(*(store.map_all(k) for k in all_keys(key)))
    totals: Counter[str] = Counter()
    for part in parts:
        for field, value in part.items():
            totals[field] += int(value)
    return dict(totals)
