"""Latency of recommendations, end to end over HTTP, against a trivial endpoint.

    python -m bench.recommend [--seconds 5] [--concurrency 1 --concurrency 8]
                              [--backend embedded --backend redis]

For each backend, a data directory is prepared in process: the demo catalog, 400
shoppers' traffic over the last weeks (`relevo.demo.traffic`), archived; the
default hybrid and the propensity model trained from the archive and promoted.
Then `relevo serve` runs on it and closed-loop clients measure per-request
latency (p50, p90, p99, max) and throughput for:

* reference: a trivial FastAPI ``GET /ping``, served the same way (uvicorn, one
  process), measured in the same run;
* ``GET /v1/recommendations`` for known users (the trained model + live signals);
* ``GET /v1/recommendations`` for new visitors on a product page (cold start);
* ``GET /v1/items/{id}/similar``;

all with the answer cache off (``RELEVO_ANSWER_CACHE_TTL=0``: every request runs
the whole pipeline); then known users again with the cache on, as repeated page
loads of users who did nothing new in between would be served.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.support import data_dir, print_table, redis_server, relevo_server, trivial_server
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.demo.traffic import demo_traffic
from relevo.engine import Engine

USERS = 400
DAY_MS = 86_400_000


async def prepare(settings: Settings) -> dict[str, Any]:
    """Catalog, traffic and two promoted models in `settings`' store and data dir."""
    engine = Engine(settings)
    await engine.start(background=False)
    try:
        await engine.upsert_items(demo_items())
        now = engine.clock.now_ms()
        events = [
            e for e in demo_traffic(USERS, start_ms=now - 21 * DAY_MS) if e["timestamp"] < now
        ]
        for start in range(0, len(events), 5000):
            await engine.ingest(events[start : start + 5000])
        started = time.perf_counter()
        hybrid = await engine.train_model("relevo", promote=True)
        propensity = await engine.train_model("propensity", promote=True)
        return {
            "events": len(events),
            "train_seconds": round(time.perf_counter() - started, 1),
            "hybrid_ndcg@20": hybrid["metrics"]["holdout"]["ndcg@20"],
            "propensity_versions": propensity["version"],
        }
    finally:
        await engine.stop()


def latencies(
    url: str, paths: Callable[[random.Random], str], seconds: float, concurrency: int
) -> dict[str, float]:
    """Closed loop: `concurrency` clients, back to back, after a one-second warm-up."""

    async def run() -> tuple[list[float], int]:
        found: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            measure_from = time.perf_counter() + 1.0
            stop_at = measure_from + seconds

            async def worker(seed: int) -> None:
                nonlocal errors
                rng = random.Random(seed)
                while (now := time.perf_counter()) < stop_at:
                    response = await client.get(paths(rng))
                    if now >= measure_from:
                        found.append(time.perf_counter() - now)
                        errors += response.status_code != 200

            await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return found, errors

    found, errors = asyncio.run(run())
    ms = np.array(found) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "rps": round(len(ms) / seconds, 1),
        "errors": errors,
    }


ITEMS = [item["item_id"] for item in demo_items()]
CASES: dict[str, Callable[[random.Random], str]] = {
    "recs, known user": lambda rng: (
        f"/v1/recommendations?user_id=shopper-{rng.randrange(USERS)}&k=10"
    ),
    "recs, new visitor on a product page": lambda rng: (
        f"/v1/recommendations?user_id=new-{rng.randrange(10**9)}&k=10&item_id={rng.choice(ITEMS)}"
    ),
    "similar items": lambda rng: f"/v1/items/{rng.choice(ITEMS)}/similar?k=10",
}
CACHED = "recs, known user, repeated (cache)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, action="append")
    parser.add_argument("--backend", action="append", choices=["embedded", "redis"])
    args = parser.parse_args()
    levels = args.concurrency or [1, 8]
    backends = args.backend or ["embedded", "redis"]
    result: dict[str, Any] = {"seconds": args.seconds, "trivial": {}, "relevo": {}}
    with trivial_server() as url:
        for c in levels:
            result["trivial"][f"c{c}"] = latencies(url, lambda _: "/ping", args.seconds, c)
    for backend in backends:
        result["relevo"][backend] = _measure_backend(backend, levels, args.seconds)
    _print(result, levels)
    print(json.dumps(result))


def _measure_backend(backend: str, levels: list[int], seconds: float) -> dict[str, Any]:
    folder = data_dir()
    if backend == "redis":
        with redis_server() as redis_url:
            return _serve_and_measure(
                {"RELEVO_STORE": redis_url, "RELEVO_DATA_DIR": str(folder)}, folder, levels, seconds
            )
    return _serve_and_measure({"RELEVO_DATA_DIR": str(folder)}, folder, levels, seconds)


def _serve_and_measure(
    env: dict[str, str], folder: Path, levels: list[int], seconds: float
) -> dict[str, Any]:
    settings = Settings(store=env.get("RELEVO_STORE", "embedded"), data_dir=folder)
    found: dict[str, Any] = {"prepared": asyncio.run(prepare(settings))}
    with relevo_server({**env, "RELEVO_ANSWER_CACHE_TTL": "0"}) as url:
        for name, paths in CASES.items():
            found[name] = {f"c{c}": latencies(url, paths, seconds, c) for c in levels}
    with relevo_server(env) as url:
        known = CASES["recs, known user"]
        found[CACHED] = {f"c{c}": latencies(url, known, seconds, c) for c in levels}
    return found


def _print(result: dict[str, Any], levels: list[int]) -> None:
    rows = []
    for c in levels:
        trivial = result["trivial"][f"c{c}"]
        rows.append(["trivial GET /ping", "-", str(c), *_cells(trivial), "1.0"])
        for backend, cases in result["relevo"].items():
            for name in [*CASES, CACHED]:
                found = cases[name][f"c{c}"]
                ratio = found["p50_ms"] / max(trivial["p50_ms"], 1e-9)
                rows.append([name, backend, str(c), *_cells(found), f"{ratio:.1f}"])
    print_table(
        f"latency over HTTP, {result['seconds']:.0f} s per row",
        ["request", "backend", "clients", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s",
         "errors", "p50 x trivial"],
        rows,
    )  # fmt: skip


def _cells(found: dict[str, float]) -> list[str]:
    keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "rps", "errors")
    return [f"{found[key]:g}" for key in keys]


if __name__ == "__main__":
    main()
