"""Worker-mode ingestion cost: CPU per event of the API side and of the worker side.

On a shared machine events/s measure the neighbours as much as relevo; CPU time per
event does not. In one process, on a fresh `redis-server` (AOF ``everysec``):

1. **API side** (``RELEVO_APPLY=worker``): `Engine.ingest` of batches of ``--batch``
   synthetic events (``bench.ingest``'s mix, ``--users`` users, 20,000 by default), a few at once as
   concurrent requests are (the committer groups them): validation, catalog
   enrichment, the log append. No HTTP: that cost is the same in both modes.
2. **Worker side**: a `Worker` applies everything logged (profiles, rules, live
   models, aggregates) until the log is drained.
3. **Reference, same run**: the same events applied inline (``RELEVO_APPLY=inline``:
   the API logs and applies), on a fresh prefix.

Each side reports this process's CPU (``time.process_time``) and the Redis server's
(``/proc/<pid>/stat``) per event, with the garbage collector tuned as ``relevo serve`` and
``relevo worker`` tune it. ``--profile api|worker`` prints a cProfile of that side.

CPU time still moves with the machine's load. ``--callgrind`` runs the same under
``valgrind --tool=callgrind`` and counts this process's instructions per event of each
side instead (only while a side runs, less what switching the count on and off costs;
string hashing fixed: stable to a percent or so, a few minutes at the default 4,000
events). Redis's own work is not counted there.

The count still follows the wall clock: the worker renews its leases and reclaims stalled
records once a second, the API side checks the backlog every 200 ms, so a run slowed by
a loaded machine does more of that per event (the same code counted 304 k and 329 k
worker instructions per event at ``--users 1000`` on a quiet and a busy machine).
``--frozen-clock`` gives the engines a clock that never moves (and the events times
before it): that housekeeping runs once, and two runs of the same code count the same
to 0.1%; compare versions with it.

    python -m bench.worker_cpu [--events 100000] [--batch 500] [--profile worker]
    python -m bench.worker_cpu --callgrind [--events 4000]
    python -m bench.worker_cpu --callgrind --users 200   # returning users: a steady state
    python -m bench.worker_cpu --callgrind --frozen-clock  # the same whatever the load

With the default 20,000 users nearly every event meets a new profile, so decoding
stored profiles barely shows; ``--users 200`` (20 events per user at 4,000 events)
weighs what a worker does for returning users.

Last line: ``{"api_cpu_ms_per_event": .., "worker_cpu_ms_per_event": .., ...}``, or with
``--callgrind`` ``{"api_instructions_per_event": .., "worker_instructions_per_event": ..,
"inline_instructions_per_event": .., ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.ingest import USERS, make_batches
from bench.support import (
    UNDER_CALLGRIND,
    callgrind_control,
    data_dir,
    print_table,
    redis_server,
    run_under_callgrind,
)
from relevo.clock import Clock, ManualClock
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.engine import Engine
from relevo.worker import Worker

CONCURRENT = 4
TICKS = os.sysconf("SC_CLK_TCK")
SIDES = ("api", "worker", "inline")


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
    """What `work` costs; under callgrind, its instructions go to a dump of their own."""
    counting = os.environ.get(UNDER_CALLGRIND) == "1"
    if counting:
        callgrind_control("--instr=on")
    wall, cpu, redis = time.perf_counter(), time.process_time(), redis_cpu_seconds(redis_pid)
    if profile is not None:
        profile.enable()
    events = await work()
    if profile is not None:
        profile.disable()
    if counting:
        callgrind_control("--instr=off")
        callgrind_control("--dump")
    return Cost(
        events,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        redis_cpu_seconds(redis_pid) - redis,
    )


FROZEN_MS = 1_767_225_600_000
"""The instant of ``--frozen-clock`` (2026-01-01)."""


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


async def nothing() -> int:
    return 0


async def run(
    redis_url: str,
    redis_pid: int,
    batches: list[list[Any]],
    worker_batch: int,
    profile: str | None,
    clock: Clock | None = None,
) -> dict[str, Cost]:
    api = Engine(settings(redis_url, "w", "worker"), clock)
    await api.start(background=False)
    applier = Engine(settings(redis_url, "w", "worker"), clock)
    await applier.start(background=False)
    inline = Engine(settings(redis_url, "i", "inline"), clock)
    await inline.start(background=False)
    try:
        await api.upsert_items(demo_items())
        await inline.upsert_items(demo_items())
        worker = Worker(applier, block_ms=5, batch=worker_batch)
        await drain(worker)  # the catalog records, and the worker's leases
        profiles = {side: cProfile.Profile() for side in ("api", "worker") if side == profile}
        if os.environ.get(UNDER_CALLGRIND) == "1":
            await measured(nothing, redis_pid, None)  # what measuring costs: subtracted
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


def count_under_callgrind(args: argparse.Namespace) -> dict[str, float]:
    """This script again, under callgrind: instructions per event of each side."""
    arguments = ["--events", str(args.events), "--batch", str(args.batch)]
    arguments += ["--worker-batch", str(args.worker_batch), "--users", str(args.users)]
    arguments += ["--frozen-clock"] if args.frozen_clock else []
    totals = [dump["Ir"] for dump in run_under_callgrind("bench.worker_cpu", arguments)]
    if len(totals) != 1 + len(SIDES):
        raise RuntimeError(f"expected {1 + len(SIDES)} callgrind dumps, found {len(totals)}")
    empty = totals.pop(0)
    events = len(flatten(make_batches(max(1, args.events // 500), users=args.users)))
    return {side: (total - empty) / events for side, total in zip(SIDES, totals, strict=True)}


def report_instructions(args: argparse.Namespace) -> None:
    counted = count_under_callgrind(args)
    rows = [
        [LABELS[side], f"{counted[side] / 1e6:.3f}", f"{counted[side] / counted['inline']:.2f}"]
        for side in SIDES
    ]
    both = counted["api"] + counted["worker"]
    rows.append(
        ["worker mode, API + worker", f"{both / 1e6:.3f}", f"{both / counted['inline']:.2f}"]
    )
    print_table(
        f"instructions per event (millions), batches of {args.batch}, under callgrind",
        ["side", "M instructions/event", "x inline"],
        rows,
    )
    print(
        json.dumps(
            {
                **{f"{side}_instructions_per_event": round(counted[side]) for side in SIDES},
                "worker_mode_vs_inline_instructions": round(both / counted["inline"], 3),
                "events": args.events,
                "batch": args.batch,
                "users": args.users,
                "frozen_clock": args.frozen_clock,
            }
        )
    )


def flatten(raw: list[bytes]) -> list[Any]:
    return [event for batch in raw for event in orjson.loads(batch)["events"]]


LABELS = {
    "api": "API, worker mode (validate, log)",
    "worker": "worker (apply)",
    "inline": "API, inline mode (validate, log, apply): reference",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, help="100,000; 4,000 with --callgrind")
    parser.add_argument("--batch", type=int, default=500, help="Events per request.")
    parser.add_argument(
        "--worker-batch", type=int, default=1_000, help="Records a worker reads at most per step."
    )
    parser.add_argument(
        "--users",
        type=int,
        default=USERS,
        help="Users the events go to (20,000: nearly every event meets a new profile; "
        "200: nearly every one a returning user's, as in a steady state).",
    )
    parser.add_argument("--profile", choices=["api", "worker"])
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument(
        "--frozen-clock",
        action="store_true",
        help="engines on a clock that never moves: housekeeping once, not per second of run",
    )
    args = parser.parse_args()
    args.events = args.events or (4_000 if args.callgrind else 100_000)
    if args.callgrind and os.environ.get(UNDER_CALLGRIND) != "1":
        report_instructions(args)
        return
    gc.set_threshold(100_000, 50, 100)  # as `relevo serve` and `relevo worker` do
    clock = ManualClock(FROZEN_MS) if args.frozen_clock else None
    events = flatten(
        make_batches(
            max(1, args.events // 500), users=args.users, now_ms=clock.now_ms() if clock else None
        )
    )
    batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]

    with redis_server() as redis_url:
        import redis

        redis_pid = int(redis.Redis.from_url(redis_url).info("server")["process_id"])
        costs = asyncio.run(
            run(redis_url, redis_pid, batches, args.worker_batch, args.profile, clock)
        )

    api, worker, inline = costs["api"], costs["worker"], costs["inline"]
    rows = []
    for name, cost in (
        (LABELS["api"], api),
        (LABELS["worker"], worker),
        (LABELS["inline"], inline),
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
                "users": args.users,
            }
        )
    )


if __name__ == "__main__":
    main()
