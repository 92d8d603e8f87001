"""Ingestion throughput, end to end: HTTP batches of 500 → durable log → profiles updated.

Runs `relevo serve` with the embedded store and with Redis (AOF, ``appendfsync
everysec``), drives each with concurrent clients posting batches of 500 synthetic
events (20,000 users, the demo catalog), and measures in the same run a trivial
FastAPI endpoint served the same way, as the reference.

    python -m bench.ingest [--seconds 10] [--concurrency 4]

Last line: ``{"trivial_rps": .., "embedded_events_per_s": .., "redis_events_per_s": ..}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import orjson

from bench.support import data_dir, drive, print_table, redis_server, relevo_server, trivial_server
from relevo.demo.catalog import demo_items

BATCH = 500
USERS = 20_000
TYPES = ["view"] * 14 + ["click"] * 3 + ["add_to_cart", "search", "purchase"]


def make_batches(
    count: int, seed: int = 1, users: int = USERS, now_ms: int | None = None
) -> list[bytes]:
    """Pre-serialized batches, so the client spends its time sending, not building.

    Events go to `users` users drawn uniformly (fewer users: more of them returning),
    in the hour before `now_ms` (default: the wall clock's now).
    """
    rng = random.Random(seed)
    items = [item["item_id"] for item in demo_items()]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    batches = []
    number = 0
    for _ in range(count):
        events = []
        for _ in range(BATCH):
            kind = rng.choice(TYPES)
            event: dict[str, object] = {
                "event_id": f"b{seed}-{number}",
                "type": kind,
                "user_id": f"u{rng.randrange(users)}",
                "timestamp": now - rng.randrange(3_600_000),
                "context": {"device": rng.choice(["mobile", "desktop"]), "country": "FR"},
            }
            if kind == "purchase":
                event["items"] = [{"item_id": rng.choice(items), "quantity": 1}]
            elif kind != "search":
                event["item_id"] = rng.choice(items)
            else:
                event["properties"] = {"query": "running shoes"}
            events.append(event)
            number += 1
        batches.append(orjson.dumps({"events": events}))
    return batches


def ingest_rate(
    url: str, batches: list[bytes], seconds: float, concurrency: int
) -> tuple[float, int]:
    def body(index: int) -> bytes:
        if index >= len(batches):
            raise RuntimeError("not enough distinct batches prepared; raise the count")
        return batches[index]

    done, elapsed, errors = asyncio.run(
        drive(url, "POST", "/v1/events", body, seconds, concurrency)
    )
    return done * BATCH / elapsed, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    batches = make_batches(int(args.seconds * 120) + 200)

    with trivial_server() as url:
        done, elapsed, _ = asyncio.run(
            drive(url, "GET", "/ping", lambda _: None, args.seconds, args.concurrency * 2)
        )
        trivial_rps = done / elapsed

    with relevo_server({"RELEVO_DATA_DIR": str(data_dir()), "RELEVO_DEMO_CATALOG": "true"}) as url:
        embedded, embedded_errors = ingest_rate(url, batches, args.seconds, args.concurrency)

    with (
        redis_server() as redis_url,
        relevo_server(
            {
                "RELEVO_STORE": redis_url,
                "RELEVO_DATA_DIR": str(data_dir()),
                "RELEVO_DEMO_CATALOG": "true",
            }
        ) as url,
    ):
        redis_rate, redis_errors = ingest_rate(url, batches, args.seconds, args.concurrency)

    print_table(
        f"ingestion: batches of {BATCH}, {args.concurrency} concurrent clients, "
        f"{args.seconds:.0f} s each",
        ["server", "rate", "errors", "vs trivial requests/s"],
        [
            ["trivial FastAPI GET /ping", f"{trivial_rps:,.0f} requests/s", "-", "1.00"],
            [
                "relevo embedded",
                f"{embedded:,.0f} events/s",
                str(embedded_errors),
                f"{embedded / trivial_rps:.2f}",
            ],
            [
                "relevo redis (AOF everysec)",
                f"{redis_rate:,.0f} events/s",
                str(redis_errors),
                f"{redis_rate / trivial_rps:.2f}",
            ],
        ],
    )
    print(
        json.dumps(
            {
                "trivial_rps": round(trivial_rps),
                "embedded_events_per_s": round(embedded),
                "redis_events_per_s": round(redis_rate),
                "batch": BATCH,
                "concurrency": args.concurrency,
            }
        )
    )


if __name__ == "__main__":
    main()
