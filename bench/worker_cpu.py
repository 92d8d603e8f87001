"""Worker-mode ingestion cost: CPU per event of the API side and of the worker side.

On a shared machine events/s measure the neighbours as much as relevo; CPU time per
event does not. In one process, on a fresh `redis-server` (AOF ``everysec``):

1. **API side** (``RELEVO_APPLY=worker``): `Engine.ingest` of batches of ``--batch``
   synthetic events (``bench.ingest``'s mix, 20,000 users), a few at once as
   concurrent requests are (the committer groups them): validation, catalog
   enrichment, the log append. No HTTP: that cost is the same in both modes.
2. **Worker side**: a `Worker` applies everything logged (profiles, rules, live
   models, aggregates) until the log is drained.
3. **Reference, same run**: the same events applied inline (``RELEVO_APPLY=inline``:
   the API logs and applies), on a fresh prefix.

Each side reports this process's CPU (``time.process_time``) and the Redis server's
(``/proc/<pid>/stat``) per event. ``--profile api|worker`` prints a cProfile of that side.

    python -m bench.worker_cpu [--events 100000] [--batch 500] [--profile worker]

Last line: ``{"api_cpu_ms_per_event": .., "worker_cpu_ms_per_event": .., ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.ingest import make_batches
from bench.support import data_dir, print_table, redis_server
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.engine import Engine
from relevo.worker import Worker

CONCURRENT = 4
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Cost:
    events: int
    seconds: float
    cpu: float
    redis_cpu: float

    def per_event_ms(self) -> tuple[float, float]:
        return self.cpu / self.events * 1e3, self.redis_cpu / self.events * 1e3


def redis_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def measured(
    work: Callable[[], Awaitable[int]], redis_pid: int, profile: cProfile.Profile | None
) -> Cost:
    wall, cpu, redis = time.perf_counter(), time.process_time(), redis_cpu_seconds(redis_pid)
    if profile is not None:
        profile.enable()
    events = await work()
    if profile is not None:
        profile.disable()
    return Cost(
        events,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        redis_cpu_seconds(redis_pid) - redis,
    )


def settings(redis_url: str, prefix: str, apply: str) -> Settings:
    return Settings(
        store=redis_url, data_dir=data_dir(), redis_prefix=prefix, apply=apply, max_lag=10**9
    )


async def ingest_all(engine: Engine, batches: list[list[Any]]) -> int:
    for start in range(0, len(batches), CONCURRENT):
        await asyncio.gather(*(engine.ingest(b) for b in batches[start : start + CONCURRENT]))
    return sum(len(batch) for batch in batches)


async def drain(worker: Worker) -> int:
    applied = 0
    idle = 0
    while idle < 3:  # three empty reads in a row: the log is drained
        done = await worker.step()
        applied += done
        idle = 0 if done else idle + 1
    return applied


async def run(
    redis_url: str,
    redis_pid: int,
    batches: list[list[Any]],
    worker_batch: int,
    profile: str | None,
) -> dict[str, Cost]:
    api = Engine(settings(redis_url, "w", "worker"))
    await api.start(background=False)
    applier = Engine(settings(redis_url, "w", "worker"))
    await applier.start(background=False)
    inline = Engine(settings(redis_url, "i", "inline"))
    await inline.start(background=False)
    try:
        await api.upsert_items(demo_items())
        await inline.upsert_items(demo_items())
        worker = Worker(applier, block_ms=5, batch=worker_batch)
        await drain(worker)  # the catalog records, and the worker's leases
        profiles = {side: cProfile.Profile() for side in ("api", "worker") if side == profile}
        costs = {
            "api": await measured(lambda: ingest_all(api, batches), redis_pid, profiles.get("api")),
            "worker": await measured(lambda: drain(worker), redis_pid, profiles.get("worker")),
            "inline": await measured(lambda: ingest_all(inline, batches), redis_pid, None),
        }
        for side, found in profiles.items():
            print(f"-- cProfile of the {side} side --")
            pstats.Stats(found).sort_stats("cumulative").print_stats(40)
            pstats.Stats(found).sort_stats("tottime").print_stats(30)
        return costs
    finally:
        for engine in (api, applier, inline):
            await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="Events per request.")
    parser.add_argument(
        "--worker-batch", type=int, default=1_000, help="Records a worker reads at most per step."
    )
    parser.add_argument("--profile", choices=["api", "worker"])
    args = parser.parse_args()
    raw = make_batches(max(1, args.events // 500))
    events = [event for batch in raw for event in orjson.loads(batch)["events"]]
    batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]

    with redis_server() as redis_url:
        import redis

        redis_pid = int(redis.Redis.from_url(redis_url).info("server")["process_id"])
        costs = asyncio.run(run(redis_url, redis_pid, batches, args.worker_batch, args.profile))

    api, worker, inline = costs["api"], costs["worker"], costs["inline"]
    rows = []
    for name, cost in (
        ("API, worker mode (validate, log)", api),
        ("worker (apply)", worker),
        ("API, inline mode (validate, log, apply): reference", inline),
    ):
        own, redis_ms = cost.per_event_ms()
        rows.append(
            [
                name,
                f"{cost.events:,}",
                f"{own:.3f}",
                f"{redis_ms:.3f}",
                f"{cost.events / cost.seconds:,.0f}",
            ]
        )
    worker_mode = api.cpu + worker.cpu
    rows.append(
        [
            "worker mode, API + worker vs inline",
            "",
            f"{worker_mode / inline.cpu:.2f} x",
            f"{(api.redis_cpu + worker.redis_cpu) / inline.redis_cpu:.2f} x",
            "",
        ]
    )
    print_table(
        f"worker-mode ingestion cost, batches of {args.batch}, {CONCURRENT} at once, in process",
        ["side", "events", "CPU ms/event", "redis CPU ms/event", "events/s (wall)"],
        rows,
    )
    print(
        json.dumps(
            {
                "api_cpu_ms_per_event": round(api.per_event_ms()[0], 4),
                "worker_cpu_ms_per_event": round(worker.per_event_ms()[0], 4),
                "inline_cpu_ms_per_event": round(inline.per_event_ms()[0], 4),
                "api_redis_cpu_ms_per_event": round(api.per_event_ms()[1], 4),
                "worker_redis_cpu_ms_per_event": round(worker.per_event_ms()[1], 4),
                "inline_redis_cpu_ms_per_event": round(inline.per_event_ms()[1], 4),
                "worker_mode_vs_inline_cpu": round(worker_mode / inline.cpu, 3),
                "events": api.events,
                "batch": args.batch,
            }
        )
    )


if __name__ == "__main__":
    main()
