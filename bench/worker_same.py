"""What a worker leaves in Redis for seeded events, written down to compare two versions.

    python -m bench.worker_same OUT.jsonl [--events 6000] [--users 300] [--batch 1000]

A CPU change to the worker's path (`Applier.apply_events`) must not change a stored
byte. This ingests a seeded mix (`bench.ingest`'s, on `--users` users, so most events
meet a stored profile; the demo's rules, whose cart timers fire) in worker mode on an
injected clock, applies it with a `Worker` reading `--batch` records a step, fires the
due timers through the log, and writes every key of the store (but the worker's lease
keys, which name it), one line each:
profile documents and their marks, the timers index, the outbox, the live models, the
site-wide counters, the drift observations (the reservoir seeded: batches of 1,000
overflow it), rule statistics. Stream entry ids and the observation messages' process
names are left out (they name the server's time and the process). Run it on both
versions (``PYTHONPATH=<other checkout>/src``) and ``cmp`` the files.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis.asyncio as redis

from bench.support import data_dir, redis_server
from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.demo.runner import RULES
from relevo.engine import Engine
from relevo.worker import Worker

START_MS = 1_767_225_600_000
TYPES = ["view"] * 12 + ["click"] * 3 + ["add_to_cart"] * 3 + ["search", "purchase"]
OWNER = re.compile(rb"\d+-[0-9a-f]{8}-\d+")


def events(count: int, users: int, seed: int = 11) -> list[dict[str, Any]]:
    """Seeded events, minutes apart per user on average, some late, a few repeated."""
    rng = random.Random(seed)
    items = [item["item_id"] for item in demo_items()]
    found: list[dict[str, Any]] = []
    for number in range(count):
        kind = rng.choice(TYPES)
        # a sliding pool of users: each one active for a quarter of the run, then quiet
        # (its cart timer fires)
        user = (number * users // count + rng.randrange(max(1, users // 4))) % users
        event: dict[str, Any] = {
            "event_id": f"s-{number}",
            "type": kind,
            "user_id": f"u{user}",
            "session_id": f"u{user}-{number // 2_000}",
            "timestamp": START_MS + number * 300 - rng.randrange(600_000),
            "context": {"device": rng.choice(["mobile", "desktop"]), "country": "FR"},
        }
        if kind == "purchase":
            lines = rng.sample(items, rng.randrange(1, 3))
            event["items"] = [{"item_id": item, "quantity": 1} for item in lines]
        elif kind != "search":
            event["item_id"] = rng.choice(items)
        else:
            event["properties"] = {"query": "running shoes"}
        found.append(event)
        if rng.random() < 0.02:  # a redelivery: absorbed once
            found.append(dict(event))
    return found


async def drain(worker: Worker) -> None:
    idle = 0
    while idle < 3:
        idle = 0 if await worker.step() else idle + 1


async def dump(url: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    lines = []
    try:
        for key in sorted(await client.keys("*")):
            if key.startswith(b"relevo:workers:"):  # the worker's random name
                continue
            kind = (await client.type(key)).decode()
            value: Any
            if kind == "string":
                value = await client.get(key)
            elif kind == "hash":
                value = sorted((await client.hgetall(key)).items())
            elif kind == "zset":
                value = [
                    (OWNER.sub(b"<owner>", member), score)
                    for member, score in await client.zrange(key, 0, -1, withscores=True)
                ]
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(await client.smembers(key))
            elif kind == "stream":
                value = [
                    sorted((f, OWNER.sub(b"<owner>", v)) for f, v in fields.items())
                    for _, fields in await client.xrange(key)
                ]
            else:
                value = kind
            lines.append(orjson.dumps([key.decode(), kind, repr(value)]))
    finally:
        await client.aclose()
    return lines


async def run(url: str, count: int, users: int, batch: int) -> list[bytes]:
    clock = ManualClock(START_MS)
    settings = Settings(store=url, data_dir=data_dir(), apply="worker", max_lag=10**9, rate_limit=0)
    api = Engine(settings, clock)
    applier = Engine(settings, clock)
    await api.start(background=False)
    await applier.start(background=False)
    applier.monitoring.observations._generator = np.random.default_rng(3)
    try:
        await api.upsert_items(demo_items())
        await api.put_rules(RULES)
        worker = Worker(applier, block_ms=1, batch=batch)
        await drain(worker)
        found = events(count, users)
        for start in range(0, len(found), 250):
            clock.advance(75_000)
            await api.ingest(found[start : start + 250])
            if start % 2_000 == 0:
                await drain(worker)
                await applier.scheduler.run_once()  # timers due by now, through the log
        await drain(worker)  # the timers armed last stay in the index
    finally:
        await api.stop()
        await applier.stop()
    dropped = orjson.dumps(
        ["values the reservoir dropped", applier.monitoring.observations.dropped]
    )
    return [*await dump(url), dropped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=6_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    with redis_server() as url:
        lines = asyncio.run(run(url, args.events, args.users, args.batch))
    args.out.write_bytes(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    main()
