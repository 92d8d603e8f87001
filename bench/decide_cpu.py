"""CPU per decision, in process, on Redis: stable where wall-clock rates are not.

    python -m bench.decide_cpu [--users 10000] [--items 2000] [--decisions 3000]
                               [--candidates 20] [--profile 30] [--callgrind]

`bench.load` measures decisions per second over HTTP, which on a shared machine moves
with the neighbours' load. This measures what a decision costs the API process itself:
`Engine.decide` in a loop on one redis-server, with `bench.load`'s data (its catalog,
the demo's placements and rules, one history event per user) and its requests (random
known users, three in four on ``home_recs``, one in four on ``home_hero``), timed with
``time.process_time()`` (CPU of this process only: Redis's own CPU is not counted).

Rows, each on users of its own (the answer cache must not serve one row from another):
the first decisions after the data was loaded (cold catalog cache), the same mix once
warm, each placement alone, the mix while a shop's stock sync changes one item's stock
every `CHURN_EVERY` decisions (each upsert's own cost included: about one a second at
the rates of this machine), the mix with the catalog cache off
(``RELEVO_CATALOG_REFRESH=0``: what decisions cost before it) and with the answer cache
off. The reference,
measured in the same run: one ``GET`` round trip through the same store (``Store.get``
of a missing key), the smallest thing a decision does several of.

CPU time still moves with the machine's load (a loaded kernel makes every system call
dearer). ``--callgrind`` runs the same under ``valgrind --tool=callgrind`` and counts the
instructions of the warm mix, the mix without the catalog cache and the reference
instead (only while they run: stable to a percent, ~5 minutes). ``--profile N`` prints
the N most expensive functions of the warm mix (cProfile) to stderr. ``--candidates N``
sets the item placements' opt-in ``candidates`` (fewer candidates per decision: answers
change), to measure what it saves.

The last line is ``{"decision_cpu_ms", "get_cpu_ms", "ratio", ...}`` (``ratio``: the warm
mix over the reference), or with ``--callgrind`` ``{"decision_instructions", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.load import DECIDE_PLACEMENTS, catalog, history
from bench.support import (
    UNDER_CALLGRIND,
    callgrind_control,
    data_dir,
    print_table,
    redis_server,
    run_under_callgrind,
)
from relevo.config import Settings
from relevo.demo.runner import PLACEMENTS, RULES
from relevo.engine import Engine

DEVICES = ["mobile", "desktop"]
CHURN_EVERY = 250
"""Decisions between two stock updates in the stock-churn row."""
"""Set in the environment of the copy of this script that runs under valgrind."""


DEADLINE_MS = 10_000
"""Each placement's deadline here: a decision that misses it answers the fallback, which
costs next to nothing, and under callgrind (some 50 times slower) a loaded machine made a
share of the default 50 ms deadlines pass, so the count fell with the load."""


def placements(candidates: int | None) -> dict[str, Any]:
    """The demo's placements; with `candidates`, item placements weigh that many (opt-in)."""
    return {
        "placements": [
            {**p, "deadline_ms": DEADLINE_MS}
            if p.get("variants") or candidates is None
            else {**p, "deadline_ms": DEADLINE_MS, "candidates": candidates}
            for p in PLACEMENTS["placements"]
        ]
    }


async def prepare(engine: Engine, users: int, items: int, candidates: int | None = None) -> None:
    """`bench.load`'s catalog, placements, rules and history, applied inline."""
    listing = catalog(items)
    for start in range(0, len(listing), 1000):
        await engine.upsert_items(listing[start : start + 1000])
    await engine.put_config("placements", placements(candidates))
    await engine.put_rules(RULES)
    now = engine.clock.now_ms()
    for body in history(users, items, 1, now):
        await engine.ingest(orjson.loads(body)["events"])


def requests(users: int, count: int, placements: list[str], seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "user_id": f"u{rng.randrange(users)}",
            "placement": rng.choice(placements),
            "context": {"device": rng.choice(DEVICES), "country": "FR"},
        }
        for _ in range(count)
    ]


class Meter:
    """CPU milliseconds per call; under callgrind, instructions per call."""

    def __init__(self) -> None:
        self.callgrind = os.environ.get(UNDER_CALLGRIND) == "1"
        self.dumps = 0

    async def per_call(self, call: Callable[[int], Awaitable[Any]], count: int) -> float:
        if self.callgrind:
            callgrind_control("--instr=on")
        started = time.process_time()
        for number in range(count):
            await call(number)
        spent = time.process_time() - started
        if not self.callgrind:
            return spent * 1000 / max(1, count)
        callgrind_control("--instr=off")
        callgrind_control("--dump")
        self.dumps += 1
        return float("nan")  # read from the dump by the parent process


async def measure(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    settings = Settings(store=redis_url, data_dir=data_dir(), rate_limit=0)
    engine = Engine(settings)
    await engine.start(background=False)
    meter = Meter()
    try:
        started = time.perf_counter()
        await prepare(engine, args.users, args.items, args.candidates)
        found: dict[str, Any] = {"prepared_s": round(time.perf_counter() - started, 1)}
        seeds = iter(range(10, 100))

        async def decisions(placements: list[str], count: int) -> float:
            bodies = requests(args.users, count, placements, next(seeds))
            return await meter.per_call(lambda n: engine.decide(bodies[n]), count)

        async def get(number: int) -> None:
            await engine.store.get(f"missing:{number}")

        count = args.decisions
        if meter.callgrind:  # warm up uninstrumented; count only the three rows
            for body in requests(args.users, 3_000, DECIDE_PLACEMENTS, next(seeds)):
                await engine.decide(body)
            await meter.per_call(get, 0)  # what measuring costs, subtracted from each row
            await decisions(DECIDE_PLACEMENTS, count)
            await meter.per_call(get, count)
            if hasattr(engine, "catalog"):  # (absent from versions before it, measured too)
                engine.catalog.check_every_ms = 0
            await decisions(DECIDE_PLACEMENTS, count)
            if engine.decisions.fallbacks:  # the count would not be a decision's
                raise RuntimeError(f"{engine.decisions.fallbacks} decisions fell back")
            return found
        found["cold"] = await decisions(DECIDE_PLACEMENTS, count)
        await decisions(DECIDE_PLACEMENTS, count)  # more warming
        found["get"] = await meter.per_call(get, count)
        found["mixed"] = await decisions(DECIDE_PLACEMENTS, count)
        found["home_recs"] = await decisions(["home_recs"], count)
        found["home_hero"] = await decisions(["home_hero"], count)
        found["stock_churn"] = await with_stock_churn(engine, args, next(seeds), meter)
        if args.profile:
            bodies = requests(args.users, count, DECIDE_PLACEMENTS, next(seeds))
            profiler = cProfile.Profile()
            profiler.enable()
            for body in bodies:
                await engine.decide(body)
            profiler.disable()
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(args.profile)
        refresh = engine.catalog.check_every_ms
        engine.catalog.check_every_ms = 0
        found["no_catalog_cache"] = await decisions(DECIDE_PLACEMENTS, count)
        engine.catalog.check_every_ms = refresh
        engine.serving.cache.ttl_ms = 0
        found["no_answer_cache"] = await decisions(DECIDE_PLACEMENTS, count)
        return found
    finally:
        await engine.stop()


async def with_stock_churn(
    engine: Engine, args: argparse.Namespace, seed: int, meter: Meter
) -> float:
    """The mix while one item's stock changes every `CHURN_EVERY` decisions."""
    bodies = requests(args.users, args.decisions, DECIDE_PLACEMENTS, seed)
    listing = catalog(args.items)

    async def call(number: int) -> None:
        if number % CHURN_EVERY == 0:
            changed = number // CHURN_EVERY
            item = listing[changed * 7 % len(listing)]
            await engine.upsert_items([{**item, "in_stock": changed % 2 == 1}])
        await engine.decide(bodies[number])

    return await meter.per_call(call, args.decisions)


ROWS = {
    "cold": "decide, mixed, first after loading (cold catalog cache)",
    "mixed": "decide, mixed (75% home_recs, 25% home_hero)",
    "home_recs": "decide, home_recs (items)",
    "home_hero": "decide, home_hero (variants)",
    "stock_churn": f"decide, mixed, a stock update every {CHURN_EVERY} decisions",
    "no_catalog_cache": "decide, mixed, catalog cache off",
    "no_answer_cache": "decide, mixed, answer cache off",
}


def count_under_callgrind(args: argparse.Namespace) -> dict[str, float]:
    """This script again, under callgrind; instructions per call of each counted row."""
    arguments = ["--users", str(args.users), "--items", str(args.items)]
    arguments += ["--decisions", str(args.decisions)]
    if args.candidates is not None:
        arguments += ["--candidates", str(args.candidates)]
    totals = [dump["Ir"] for dump in run_under_callgrind("bench.decide_cpu", arguments)]
    if len(totals) != 4:
        raise RuntimeError(f"expected 4 callgrind dumps, found {len(totals)}")
    empty = totals.pop(0)
    per = [(total - empty) / args.decisions for total in totals]
    return {"mixed": per[0], "get": per[1], "no_catalog_cache": per[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--decisions", type=int, help="per row (3,000; 300 with --callgrind)")
    parser.add_argument(
        "--candidates",
        type=int,
        help="candidates per item decision (the placement's opt-in setting; default: unset)",
    )
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = parser.parse_args()
    if os.environ.get(UNDER_CALLGRIND) == "1":
        with redis_server() as redis_url:
            asyncio.run(measure(args, redis_url))
        return
    args.decisions = args.decisions or (300 if args.callgrind else 3_000)
    if args.callgrind:
        counted = count_under_callgrind(args)
        rows = [
            ["reference: Store.get round trip", f"{counted['get'] / 1e6:.2f}", "1.0"],
            *(
                [ROWS[name], f"{counted[name] / 1e6:.2f}", f"{counted[name] / counted['get']:.1f}"]
                for name in ("mixed", "no_catalog_cache")
            ),
        ]
        print_table(
            f"instructions per call (millions), {args.decisions} calls per row",
            ["call", "M instructions", "x reference"],
            rows,
        )
        print(
            json.dumps(
                {
                    "decision_instructions": round(counted["mixed"]),
                    "no_catalog_cache_instructions": round(counted["no_catalog_cache"]),
                    "get_instructions": round(counted["get"]),
                    "ratio": round(counted["mixed"] / counted["get"], 1),
                    "decisions": args.decisions,
                }
            )
        )
        return
    with redis_server() as redis_url:
        found = asyncio.run(measure(args, redis_url))
    get_ms = found["get"]
    rows = [["reference: Store.get round trip", f"{get_ms:.3f}", "1.0"]]
    rows += [
        [label, f"{found[name]:.3f}", f"{found[name] / get_ms:.1f}"] for name, label in ROWS.items()
    ]
    print_table(
        f"CPU per call in process ({args.users:,} users, {args.items:,} items, Redis, "
        f"{args.decisions:,} calls per row)",
        ["call", "CPU ms", "x reference"],
        rows,
    )
    result = {
        "decision_cpu_ms": round(found["mixed"], 3),
        **{f"{name}_cpu_ms": round(found[name], 3) for name in ROWS if name != "mixed"},
        "get_cpu_ms": round(get_ms, 4),
        "ratio": round(found["mixed"] / get_ms, 1),
        "prepared_s": found["prepared_s"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
