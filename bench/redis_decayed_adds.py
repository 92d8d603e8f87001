"""Redis's own work for the live models: instructions of `redis-server` (run under
callgrind) per event for the decayed adds (`RedisStore.decayed_add_groups`) the live
models make, which the machine's load does not change (the CPU of a Redis on a shared machine
does).

The adds are those of a real ingestion: ``bench.ingest``'s events (``--users`` users, 200
by default: returning users, whose sessions give co-visitation pairs) applied in batches
of ``--batch`` on the embedded store, each call of groups of adds the live models make
recorded, then the same calls sent to a `RedisStore` on a `redis-server` under callgrind.
``--digest`` also prints a digest of every decayed set and landmark written (scores as
Redis stores them, TTLs present or not): two versions of the store should print the same.

    python -m bench.redis_decayed_adds [--events 20000] [--users 200] [--digest]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import orjson

from bench.ingest import make_batches
from bench.redis_doc_writes import instructions_counted
from bench.support import callgrind_control, data_dir, print_table, redis_under_callgrind
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.engine import Engine
from relevo.store.base import DecayedAdd, DecayedGroup
from relevo.store.redis import RedisStore

NOW_S = 1_767_225_600.0
"""Events are timed before this (`make_batches` reads the clock): the same adds each run."""

Call = list[DecayedGroup]


async def recorded_adds(events: list[Any], batch: int) -> list[Call]:
    """The live models' decayed adds for `events`, applied `batch` at a time, in order."""
    engine = Engine(Settings(store="embedded", data_dir=data_dir()))
    await engine.start(background=False)
    calls: list[Call] = []
    original = engine.store.decayed_add_groups

    async def record(groups: Sequence[DecayedGroup]) -> None:
        calls.append(list(groups))
        await original(groups)

    try:
        await engine.upsert_items(demo_items())  # its attribute postings: not recorded
        with mock.patch.object(engine.store, "decayed_add_groups", record):
            for start in range(0, len(events), batch):
                await engine.ingest(events[start : start + batch])
    finally:
        await engine.stop()
    return calls


async def replay(url: str, pid: int, folder: Path, calls: list[Call], digest: bool) -> float:
    """Redis's instructions for `calls` (counting on only while they run)."""
    store = RedisStore(url, prefix="bench:")
    store.socket_timeout_s = 600.0  # a batch's adds take seconds under callgrind
    try:
        await store.decayed_add([DecayedAdd("warm", {"w": 1.0}, 0)], 1000, 10)  # loads the script
        callgrind_control("--zero", pid)
        callgrind_control("--instr=on", pid)
        for groups in calls:
            await store.decayed_add_groups(groups)
        counted = instructions_counted(pid, folder)
        if digest:
            print("digest:", await written(store))
    finally:
        await store.close()
    return counted


async def written(store: RedisStore) -> str:
    """A digest of every set and landmark the adds wrote: scores as stored, TTLs present."""
    client = store.client
    found = hashlib.sha256()
    for key in sorted(await client.keys("bench:*")):
        kind = await client.type(key)
        if kind == b"zset":
            value: Any = await client.zrange(key, 0, -1, withscores=True, score_cast_func=bytes)
        else:
            value = await client.get(key)
        found.update(repr((key, value, await client.pttl(key) > 0)).encode())
    return found.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1_000, help="Events applied at once.")
    parser.add_argument("--digest", action="store_true", help="digest of what was written")
    args = parser.parse_args()
    with mock.patch("time.time", return_value=NOW_S):
        raw = make_batches(max(1, args.events // 500), users=args.users)
    events = [event for body in raw for event in orjson.loads(body)["events"]]
    calls = asyncio.run(recorded_adds(events, args.batch))
    with redis_under_callgrind() as (url, pid, folder):
        counted = asyncio.run(replay(url, pid, folder, calls, args.digest))
    members = sum(len(add.weights) for groups in calls for g in groups for add in g.adds)
    sets = sum(len(group.adds) for groups in calls for group in groups)
    print_table(
        f"Redis instructions for the live models' decayed adds, {len(events):,} events "
        f"({args.users:,} users), batches of {args.batch:,}",
        ["per", "count", "k instructions each"],
        [
            ["event", f"{len(events):,}", f"{counted / len(events) / 1e3:.1f}"],
            ["set added to", f"{sets:,}", f"{counted / sets / 1e3:.1f}"],
            ["member added", f"{members:,}", f"{counted / members / 1e3:.1f}"],
        ],
    )
    print(
        json.dumps(
            {
                "instructions_per_event": round(counted / len(events)),
                "sets_per_event": round(sets / len(events), 3),
                "members_per_event": round(members / len(events), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
