"""Rules' cost on ingestion: 1,000 active rules (about 10 match each event) vs none.

Two measurements in one run, on the embedded backend:

- **HTTP, end to end** (what "ingestion throughput" means in `bench.ingest`): two
  `relevo serve` processes, one with no rules and one with the 1,000 rules (sent
  through ``PUT /v1/rules``), each driven by the same concurrent clients posting
  batches of 500; events/s with rules off and on, and the share the rules cost.
- **In process**: `Engine.ingest` on the same batches, alternately, best of several
  rounds, which isolates the rules' overhead per event.

    python -m bench.rules_ingest [--seconds 8] [--rounds 3] [--batches 10] [--callgrind]

Last line: ``{"http_events_per_s_rules_off": .., "http_events_per_s_rules_on": ..,
"http_cost": .., "http_cpu_us_per_event_rules_off": .., "http_cpu_us_per_event_rules_on": ..,
"http_cpu_cost": .., "events_per_s_rules_off": .., "events_per_s_rules_on": .., "cost": ..,
"overhead_us_per_event": ..}``. On a shared machine read the CPU figures: the server's
CPU time per event, off and on, moves far less with other load than events/s do.

``--callgrind`` counts instead, in process under ``valgrind --tool=callgrind``, the
instructions and first-level cache misses per event with rules off and on (the same
whatever else the machine does, so two versions of the code compare exactly; the rules'
share of the time is higher than their share of instructions: interpreted code runs at a
lower rate than the C the rest of ingestion spends its time in). Last line:
``{"instructions_per_event_rules_off": .., "instructions_per_event_rules_on": ..,
"instruction_cost": .., "i1_misses_per_event_rules_off": .., ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.ingest import BATCH, make_batches
from bench.rules import CATEGORIES, CONDITIONS
from bench.support import (
    UNDER_CALLGRIND,
    callgrind_control,
    cpu_seconds,
    data_dir,
    drive,
    print_table,
    relevo_process,
    run_under_callgrind,
)
from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine

WORKLOAD_TYPES = ["view", "click", "add_to_cart", "search", "purchase"]
TYPES = WORKLOAD_TYPES + [f"custom_{n}" for n in range(95)]
RULES_PER_TYPE = 10


def thousand_rules() -> list[dict[str, Any]]:
    rules = []
    for t_index, kind in enumerate(TYPES):
        for i in range(RULES_PER_TYPE):
            category = CATEGORIES[(t_index + i) % len(CATEGORIES)]
            rules.append(
                {
                    "id": f"{kind}-{i}",
                    "trigger": {"on": kind},
                    "when": CONDITIONS[i].format(cat=category),
                    "then": [{"add_segment": f"{kind}-{i}"}],
                }
            )
    return rules


async def engine_with(rules: list[dict[str, Any]], clock: ManualClock) -> Engine:
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="relevo-bench-rules-")), demo_catalog=True
    )
    engine = Engine(settings, clock)
    await engine.start(background=False)
    if rules:
        await engine.put_rules({"rules": rules})
    return engine


async def ingest_rate(engine: Engine, batches: list[list[dict[str, Any]]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        await engine.ingest(batch)
    return len(batches) * BATCH / (time.perf_counter() - start)


async def run(rounds: int, count: int) -> dict[str, float]:
    gc.set_threshold(100_000, 50, 100)  # as `relevo serve` does
    raw = [orjson.loads(body)["events"] for body in make_batches(count * rounds * 2 + 2, seed=5)]
    clock = ManualClock(max(e["timestamp"] for batch in raw for e in batch) + 1)
    off, on = await engine_with([], clock), await engine_with(thousand_rules(), clock)
    assert len(on.rules.current.rules_for_event("view")) == RULES_PER_TYPE
    await ingest_rate(off, raw[:1])  # warm both up
    await ingest_rate(on, raw[1:2])
    best_off = best_on = 0.0
    for round_ in range(rounds):
        chunk = raw[2 + round_ * 2 * count : 2 + (round_ * 2 + 2) * count]
        best_off = max(best_off, await ingest_rate(off, chunk[:count]))
        best_on = max(best_on, await ingest_rate(on, chunk[count:]))
    stats = await on.rule_stats.read()
    evaluations = sum(s["evaluations"] for s in stats.values())
    await off.stop()
    await on.stop()
    return {
        "events_per_s_rules_off": best_off,
        "events_per_s_rules_on": best_on,
        "cost": 1 - best_on / best_off,
        "overhead_us_per_event": 1e6 / best_on - 1e6 / best_off,
        "rule_evaluations": evaluations,
    }


async def count_under_callgrind(warm_up: int, count: int) -> None:
    """Under callgrind: an empty window, then `count` batches with rules off and on, each
    after `warm_up` batches, each window dumped (the parent reads the dumps)."""
    gc.set_threshold(100_000, 50, 100)
    raw = [orjson.loads(b)["events"] for b in make_batches(warm_up + count, seed=5)]
    clock = ManualClock(max(e["timestamp"] for batch in raw for e in batch) + 1)
    engines = [await engine_with([], clock), await engine_with(thousand_rules(), clock)]
    callgrind_control("--instr=on")  # the window's own cost, subtracted by the parent
    callgrind_control("--instr=off")
    callgrind_control("--dump")
    for engine in engines:
        for batch in raw[:warm_up]:
            await engine.ingest(batch)
        callgrind_control("--instr=on")
        for batch in raw[warm_up:]:
            await engine.ingest(batch)
        callgrind_control("--instr=off")
        callgrind_control("--dump")
        await engine.stop()


CALLGRIND_EVENTS = ("Ir", "I1mr", "D1mr", "D1mw")


def callgrind_counts(warm_up: int, count: int) -> dict[str, float]:
    """This script again under callgrind: instructions and L1 misses per event, off and on."""
    arguments = ["--batches", str(count), "--warm-up", str(warm_up)]
    totals = run_under_callgrind("bench.rules_ingest", arguments, cache_sim=True)
    if len(totals) != 3:
        raise RuntimeError(f"expected 3 callgrind dumps, found {len(totals)}")
    empty, off, on = totals
    events = count * BATCH
    per = {
        mode: {name: (totals[name] - empty[name]) / events for name in CALLGRIND_EVENTS}
        for mode, totals in (("off", off), ("on", on))
    }
    return {
        "instructions_per_event_rules_off": per["off"]["Ir"],
        "instructions_per_event_rules_on": per["on"]["Ir"],
        "instruction_cost": 1 - per["off"]["Ir"] / per["on"]["Ir"],
        "i1_misses_per_event_rules_off": per["off"]["I1mr"],
        "i1_misses_per_event_rules_on": per["on"]["I1mr"],
        "d1_misses_per_event_rules_off": per["off"]["D1mr"] + per["off"]["D1mw"],
        "d1_misses_per_event_rules_on": per["on"]["D1mr"] + per["on"]["D1mw"],
    }


def print_callgrind(result: dict[str, float]) -> None:
    print_table(
        "ingestion with 1,000 rules (10 per event type) vs none, in process, per event",
        ["", "rules off", "rules on", "cost of rules"],
        [
            [
                "instructions",
                f"{result['instructions_per_event_rules_off']:,.0f}",
                f"{result['instructions_per_event_rules_on']:,.0f}",
                f"{result['instruction_cost']:.1%}",
            ],
            *(
                [
                    f"{label} misses",
                    f"{result[f'{key}_misses_per_event_rules_off']:,.0f}",
                    f"{result[f'{key}_misses_per_event_rules_on']:,.0f}",
                    "",
                ]
                for label, key in (("L1 instruction", "i1"), ("L1 data", "d1"))
            ),
        ],
    )
    print(json.dumps({key: round(value, 4) for key, value in result.items()}))


def http_rates(seconds: float, concurrency: int) -> list[tuple[float, float]]:
    """Events/s and the server's CPU µs per event over HTTP, without rules and with the
    1,000 rules: same batches, same clients.

    CPU per event is the steadier figure on a shared machine: other processes slow the
    wall clock, while the server's own CPU time per event changes little."""
    import httpx

    batches = make_batches(int(seconds * 120) + 200, seed=7)
    results = []
    for rules in ([], thousand_rules()):
        env = {"RELEVO_DATA_DIR": str(data_dir()), "RELEVO_DEMO_CATALOG": "true"}
        with relevo_process(env) as (url, pid):
            if rules:
                answer = httpx.put(url + "/v1/rules", json={"rules": rules}, timeout=60)
                answer.raise_for_status()
            readings: list[float] = []
            done, elapsed, errors = asyncio.run(
                drive(
                    url,
                    "POST",
                    "/v1/events",
                    lambda index: batches[index],
                    seconds,
                    concurrency,
                    probe=lambda readings=readings, pid=pid: readings.append(cpu_seconds(pid)),
                )
            )
            if errors:
                raise RuntimeError(f"{errors} requests failed")
            events = done * BATCH
            results.append((events / elapsed, (readings[1] - readings[0]) / events * 1e6))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="HTTP run length each")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=10, help="batches of 500 per round")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument(
        "--warm-up", type=int, default=30, help="with --callgrind: batches before counting"
    )
    args = parser.parse_args()
    if os.environ.get(UNDER_CALLGRIND) == "1":
        asyncio.run(count_under_callgrind(args.warm_up, args.batches))
        return
    if args.callgrind:
        print_callgrind(callgrind_counts(args.warm_up, args.batches))
        return
    (http_off, cpu_off), (http_on, cpu_on) = http_rates(args.seconds, args.concurrency)
    result = {
        "http_events_per_s_rules_off": http_off,
        "http_events_per_s_rules_on": http_on,
        "http_cost": 1 - http_on / http_off,
        "http_cpu_us_per_event_rules_off": cpu_off,
        "http_cpu_us_per_event_rules_on": cpu_on,
        "http_cpu_cost": 1 - cpu_off / cpu_on,
        **asyncio.run(run(args.rounds, args.batches)),
    }
    print_table(
        "ingestion with 1,000 rules (10 per event type) vs none, embedded backend",
        ["", "HTTP end to end", "in process"],
        [
            [
                "events/s, rules off",
                f"{http_off:,.0f}",
                f"{result['events_per_s_rules_off']:,.0f}",
            ],
            ["events/s, rules on", f"{http_on:,.0f}", f"{result['events_per_s_rules_on']:,.0f}"],
            ["throughput cost of rules", f"{result['http_cost']:.1%}", f"{result['cost']:.1%}"],
            ["server CPU per event, rules off", f"{cpu_off:.1f} µs", ""],
            ["server CPU per event, rules on", f"{cpu_on:.1f} µs", ""],
            ["throughput cost of rules, by CPU", f"{result['http_cpu_cost']:.1%}", ""],
            ["overhead per event", "", f"{result['overhead_us_per_event']:.1f} µs"],
        ],
    )
    print(json.dumps({key: round(value, 4) for key, value in result.items()}))


if __name__ == "__main__":
    main()
