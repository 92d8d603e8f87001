"""CPU per decision, in process, on Redis: stable where wall-clock rates are not.

    python -m bench.decide_cpu [--users 10000] [--items 2000] [--decisions 3000]
                               [--profile 30]

`bench.load` measures decisions per second over HTTP, which on a shared machine moves
with the neighbours' load. This measures what a decision costs the API process itself:
`Engine.decide` in a loop on one redis-server, with `bench.load`'s data (its catalog,
the demo's placements and rules, one history event per user) and its requests (random
known users, three in four on ``home_recs``, one in four on ``home_hero``), timed with
``time.process_time()`` (CPU of this process only: Redis's own CPU is not counted).

The reference, measured in the same run: one ``GET`` round trip through the same store
(``Store.get`` of a missing key), the smallest thing a decision does many of. Rows:
decisions on both placements, one placement at a time, and with the answer cache off.
``--profile N`` prints the N most expensive functions (cProfile, cumulative) of the
mixed loop to stderr. The last line is ``{"decision_cpu_ms", "get_cpu_ms", "ratio", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.load import DECIDE_PLACEMENTS, catalog, history
from bench.support import data_dir, print_table, redis_server
from relevo.config import Settings
from relevo.demo.runner import PLACEMENTS, RULES
from relevo.engine import Engine

DEVICES = ["mobile", "desktop"]


async def prepare(engine: Engine, users: int, items: int) -> None:
    """`bench.load`'s catalog, placements, rules and history, applied inline."""
    listing = catalog(items)
    for start in range(0, len(listing), 1000):
        await engine.upsert_items(listing[start : start + 1000])
    await engine.put_config("placements", PLACEMENTS)
    await engine.put_rules(RULES)
    now = engine.clock.now_ms()
    for body in history(users, items, 1, now):
        await engine.ingest(orjson.loads(body)["events"])


def requests(users: int, count: int, placements: list[str], seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "user_id": f"u{rng.randrange(users)}",
            "placement": rng.choice(placements),
            "context": {"device": rng.choice(DEVICES), "country": "FR"},
        }
        for _ in range(count)
    ]


async def cpu_per_call(call: Callable[[int], Awaitable[Any]], count: int) -> float:
    """CPU milliseconds per call, after a warm-up of a tenth of `count`."""
    for number in range(max(1, count // 10)):
        await call(number)
    started = time.process_time()
    for number in range(count):
        await call(number)
    return (time.process_time() - started) * 1000 / count


async def measure(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    settings = Settings(store=redis_url, data_dir=data_dir(), rate_limit=0)
    engine = Engine(settings)
    await engine.start(background=False)
    try:
        started = time.perf_counter()
        await prepare(engine, args.users, args.items)
        prepared_s = time.perf_counter() - started
        found: dict[str, Any] = {"prepared_s": round(prepared_s, 1)}

        async def get(number: int) -> None:
            await engine.store.get(f"missing:{number}")

        found["get_cpu_ms"] = await cpu_per_call(get, args.decisions)
        cases = {
            "mixed": DECIDE_PLACEMENTS,
            "home_recs": ["home_recs"],
            "home_hero": ["home_hero"],
        }
        for seed, (name, placements) in enumerate(cases.items(), start=10):
            # Each case its own users: the answer cache must not serve a case from another.
            bodies = requests(args.users, args.decisions, placements, seed)

            async def decide(number: int, bodies: list[dict[str, Any]] = bodies) -> None:
                await engine.decide(bodies[number % len(bodies)])

            found[f"{name}_cpu_ms"] = await cpu_per_call(decide, args.decisions)
        engine.serving.cache.ttl_ms = 0
        bodies = requests(args.users, args.decisions, DECIDE_PLACEMENTS, seed=2)

        async def uncached(number: int) -> None:
            await engine.decide(bodies[number % len(bodies)])

        found["uncached_cpu_ms"] = await cpu_per_call(uncached, args.decisions)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for body in bodies[: args.decisions]:
                await engine.decide(body)
            profiler.disable()
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(args.profile)
            stats.sort_stats("tottime").print_stats(args.profile)
        return found
    finally:
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--decisions", type=int, default=3_000)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    args = parser.parse_args()
    with redis_server() as redis_url:
        found = asyncio.run(measure(args, redis_url))
    get_ms = found["get_cpu_ms"]
    rows = [["reference: Store.get round trip", f"{get_ms:.3f}", "1.0"]]
    for name in ("mixed", "home_recs", "home_hero", "uncached"):
        value = found[f"{name}_cpu_ms"]
        label = "decide, answer cache off" if name == "uncached" else f"decide, {name}"
        rows.append([label, f"{value:.3f}", f"{value / get_ms:.1f}"])
    print_table(
        f"CPU per call in process ({args.users:,} users, {args.items:,} items, Redis)",
        ["call", "CPU ms", "x reference"],
        rows,
    )
    result = {
        "decision_cpu_ms": round(found["mixed_cpu_ms"], 3),
        "home_recs_cpu_ms": round(found["home_recs_cpu_ms"], 3),
        "home_hero_cpu_ms": round(found["home_hero_cpu_ms"], 3),
        "uncached_cpu_ms": round(found["uncached_cpu_ms"], 3),
        "get_cpu_ms": round(get_ms, 4),
        "ratio": round(found["mixed_cpu_ms"] / get_ms, 1),
        "prepared_s": found["prepared_s"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
