"""CPU per request through relevo's app, in process: what the app adds around the engine.

    python -m bench.app_cpu [--requests 3000] [--callgrind]

`bench.load` measures requests per second over HTTP, `bench.decide_cpu` what
`Engine.decide` costs. This measures the layer between them: relevo's ASGI app called in
this process (no sockets, no HTTP parsing; a fresh `redis-server`, `bench.decide_cpu`'s
data, API keys set as a server would have them) for ``POST /v1/decide`` and ``POST
/v1/events`` (one event a request, as the browser SDK sends them; inline application),
and the same work asked of the engine directly. The difference is what routing, the
access check, the middleware, reading the body and writing the answer cost a request.
The reference, in the same run: `bench.trivial_app`'s ``GET /ping`` (the trivial endpoint
of `bench.load`) through the same driver.

``--callgrind`` counts instructions per request instead of CPU time (stable to a percent,
a few minutes): compare versions with it.

Last line: ``{"decide_app_cpu_ms", "decide_engine_cpu_ms", "decide_overhead_ms",
"event_app_cpu_ms", "event_engine_cpu_ms", "event_overhead_ms", "ping_cpu_ms"}`` (with
``--callgrind``, ``_instructions`` for ``_cpu_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.decide_cpu import Meter, prepare, requests
from bench.load import DECIDE_PLACEMENTS
from bench.support import UNDER_CALLGRIND, data_dir, print_table, redis_server, run_under_callgrind
from bench.trivial_app import app as trivial_app
from relevo.api.app import create_app
from relevo.config import Settings

USERS, ITEMS = 10_000, 2_000
WRITE_KEY = "bench-write-key"
ROWS = {
    "ping": "reference: GET /ping, the trivial app",
    "decide_app": "POST /v1/decide through the app",
    "decide_engine": "Engine.decide",
    "event_app": "POST /v1/events (one event) through the app",
    "event_engine": "Engine.ingest (one event)",
}


async def asgi_call(app: Any, method: str, path: str, body: bytes = b"") -> int:
    """One request to an ASGI `app`, as a server would hand it over; its status."""
    headers = [(b"host", b"bench"), (b"authorization", b"Bearer " + WRITE_KEY.encode())]
    if body:
        headers += [(b"content-type", b"application/json")]
        headers += [(b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    given = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # (a client that stays: never asked for here)
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def events(count: int, seed: int) -> list[dict[str, Any]]:
    """Views of known users, each with its own id (every request is accepted)."""
    return [
        {
            "event_id": f"bench-app-{seed}-{n}",
            "type": "view",
            "user_id": f"u{(n * 7919) % USERS}",
            "item_id": f"i{(n * 104729) % ITEMS}",
            "context": {"device": "mobile", "country": "FR"},
        }
        for n in range(count)
    ]


async def measure(count: int, redis_url: str) -> dict[str, float]:
    settings = Settings(
        store=redis_url, data_dir=data_dir(), rate_limit=0, write_key=WRITE_KEY, admin_key="a"
    )
    app = create_app(settings)
    engine = app.state.engine
    await engine.start(background=False)
    meter = Meter()
    try:
        await prepare(engine, USERS, ITEMS)
        warm = [orjson.dumps(body) for body in requests(USERS, 3_000, DECIDE_PLACEMENTS, 1)]
        for body in warm:  # caches warm, every route's first call made
            if await asgi_call(app, "POST", "/v1/decide", body) != 200:
                raise RuntimeError("a warm-up decision failed")
        for event in events(200, 0):
            await asgi_call(app, "POST", "/v1/events", orjson.dumps(event))
        await asgi_call(trivial_app, "GET", "/ping")

        def through_app(path: str, bodies: list[bytes]) -> Callable[[int], Awaitable[Any]]:
            return lambda n: asgi_call(app, "POST", path, bodies[n])

        decisions = requests(USERS, count, DECIDE_PLACEMENTS, 2)
        views = events(count, 1)
        # under callgrind, an empty window first: what measuring costs, taken off each row
        await meter.per_call(lambda n: asyncio.sleep(0), 0)
        found: dict[str, float] = {}
        found["ping"] = await meter.per_call(
            lambda n: asgi_call(trivial_app, "GET", "/ping"), count
        )
        found["decide_app"] = await meter.per_call(
            through_app("/v1/decide", [orjson.dumps(body) for body in decisions]), count
        )
        decisions = requests(USERS, count, DECIDE_PLACEMENTS, 3)
        found["decide_engine"] = await meter.per_call(lambda n: engine.decide(decisions[n]), count)
        found["event_app"] = await meter.per_call(
            through_app("/v1/events", [orjson.dumps(event) for event in views]), count
        )
        views = events(count, 2)
        found["event_engine"] = await meter.per_call(
            lambda n: engine.ingest([views[n]], batch=False), count
        )
        return found
    finally:
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, help="per row (3,000; 300 with --callgrind)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = parser.parse_args()
    count = args.requests or (300 if args.callgrind else 3_000)
    if os.environ.get(UNDER_CALLGRIND) == "1":
        with redis_server() as redis_url:
            asyncio.run(measure(count, redis_url))
        return
    if args.callgrind:
        totals = [
            dump["Ir"] for dump in run_under_callgrind("bench.app_cpu", ["--requests", str(count)])
        ]
        if len(totals) != len(ROWS) + 1:
            raise RuntimeError(f"expected {len(ROWS) + 1} callgrind dumps, found {len(totals)}")
        empty = totals.pop(0)
        found = dict(zip(ROWS, ((total - empty) / count for total in totals), strict=True))
        unit, digits = "instructions", 0
    else:
        with redis_server() as redis_url:
            found = asyncio.run(measure(count, redis_url))
        unit, digits = "cpu_ms", 3
    reference = found["ping"]
    print_table(
        f"{unit.replace('_', ' ')} per request, in process ({count:,} requests per row)",
        ["request", unit.replace("_", " "), "x reference"],
        [
            [label, f"{found[name]:,.{digits}f}", f"{found[name] / reference:.1f}"]
            for name, label in ROWS.items()
        ],
    )
    result: dict[str, float] = {}
    for name in ("decide", "event"):
        result[f"{name}_app_{unit}"] = round(found[f"{name}_app"], digits)
        result[f"{name}_engine_{unit}"] = round(found[f"{name}_engine"], digits)
        result[f"{name}_overhead_{unit}"] = round(
            found[f"{name}_app"] - found[f"{name}_engine"], digits
        )
    result[f"ping_{unit}"] = round(reference, digits)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
