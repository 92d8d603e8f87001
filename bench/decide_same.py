"""Seeded decisions written down, to compare two versions of the code byte for byte.

    python -m bench.decide_same OUT.jsonl [--decisions 4000] [--backend redis|embedded]

A CPU change to the decision path must not change an answer. This runs `bench.load`'s
data (catalog, one history of a few events per user) and a seeded mix of decisions on
an injected clock (so decays, trending and caches see the same times in both runs),
with events ingested between them (answer and catalog caches invalidated, trending and
co-visitation moving) and a richer rule set than the demo's (filters, boosts that err on
some items, buries, pins, variants, ``now``). Each line of OUT is one response without
its random ``decision_id``; the last lines are the counters the decisions recorded.
Run it on both versions (``PYTHONPATH=<other checkout>/src``) and ``cmp`` the files.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.load import catalog, history
from bench.support import data_dir, redis_server
from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.demo.runner import PLACEMENTS, RULES
from relevo.engine import Engine
from relevo.store import keys, sharded

USERS = 2_000
ITEMS = 1_000
START_MS = 1_767_225_600_000

EXTRA_PLACEMENTS = [
    {"id": "pdp", "k": 6, "policy": "rules", "filters": {"exclude_seen": True}},
    {
        "id": "cheap",
        "k": 5,
        "filters": {"max_price": 120.0, "min_price": 10.0, "exclude_categories": ["c3"]},
        "diversity": {"max_per_category": 1},
    },
]
EXTRA_RULES = [
    {
        "id": "pricey-buried",
        "trigger": {"on": "decide", "placement": "home_recs"},
        "then": [{"bury": "item.price > 250.0"}],
    },
    {
        "id": "mobile-tags",
        "trigger": {"on": "decide", "placement": "home_recs"},
        "when": "context.device == 'mobile'",
        "then": [{"boost": "'t5' in item.tags || item.brand == 'b7'", "by": 3.0}],
    },
    {
        "id": "rating-errs",
        "trigger": {"on": "decide", "placement": "pdp"},
        "then": [{"boost": "item.rating > 3", "by": 2.0}],
    },
    {
        "id": "stock-only",
        "trigger": {"on": "decide", "placement": "pdp"},
        "then": [{"filter": "item.in_stock == true && item.price < 280.0"}],
    },
    {
        "id": "affinity-weighted",
        "trigger": {"on": "decide", "placement": "cheap"},
        "then": [
            {
                "boost": "profile.affinities[item.category] * item.price > 50.0",
                "by": 1.5,
            },
            {"filter": "has(item.brand) && item.brand != 'b1'", "on_error": "drop"},
        ],
    },
    {
        "id": "pinned-new",
        "trigger": {"on": "decide", "placement": "home_recs"},
        "when": "now > timestamp('2025-01-01T00:00:00Z') && context.country == 'FR'",
        "then": [{"pin": ["it-7", "it-11"], "position": 1}],
    },
]


def rules() -> dict[str, Any]:
    return {"rules": [*RULES["rules"], *EXTRA_RULES]}


def placements() -> dict[str, Any]:
    """The demo's and the extra placements, with a deadline no pause on a loaded machine
    reaches (a late decision is a fallback, which would differ from run to run)."""
    every = [*PLACEMENTS["placements"], *EXTRA_PLACEMENTS]
    return {"placements": [{**p, "deadline_ms": 10_000} for p in every]}


def request(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": f"u{rng.randrange(USERS + 200)}",  # some unknown users
        "placement": rng.choice(["home_recs", "home_recs", "home_hero", "pdp", "cheap"]),
        "context": {"device": rng.choice(["mobile", "desktop"]), "country": "FR"},
    }
    if rng.random() < 0.1:
        body["context"] = {}
    if rng.random() < 0.1:
        body["k"] = rng.randrange(1, 9)
    if rng.random() < 0.1:
        body["exclude"] = [f"it-{rng.randrange(ITEMS)}" for _ in range(3)]
    return body


def event(rng: random.Random, number: int, now_ms: int) -> dict[str, Any]:
    user = rng.randrange(USERS)
    found: dict[str, Any] = {
        "event_id": f"live-{number}",
        "type": rng.choice(["view", "view", "click", "add_to_cart", "purchase"]),
        "user_id": f"u{user}",
        "session_id": f"u{user}-live",
        "timestamp": now_ms,
        "context": {"device": "mobile", "country": "FR"},
    }
    item = f"it-{rng.randrange(ITEMS)}"
    if found["type"] == "purchase":
        found["items"] = [{"item_id": item, "quantity": 1}]
    else:
        found["item_id"] = item
    return found


async def run(store: str, decisions: int) -> list[bytes]:
    clock = ManualClock(START_MS)
    engine = Engine(Settings(store=store, data_dir=data_dir(), rate_limit=0), clock)
    await engine.start(background=False)
    engine.decisions.rng = np.random.default_rng(7)  # learned variants: seeded too
    rng = random.Random(42)
    lines: list[bytes] = []
    try:
        listing = catalog(ITEMS)
        await engine.upsert_items(listing)
        await engine.put_config("placements", placements())
        await engine.put_rules(rules())
        for body in history(USERS, ITEMS, 4, clock.now_ms()):
            await engine.ingest(orjson.loads(body)["events"])
        for number in range(decisions):
            clock.advance(rng.choice([1, 7, 40, 300, 2_500, 12_000]))
            if rng.random() < 0.15:
                await engine.ingest([event(rng, number, clock.now_ms())])
            if rng.random() < 0.01:  # a catalog change: a new generation
                item = dict(rng.choice(listing), price=round(rng.uniform(5, 300), 2))
                await engine.upsert_items([item])
            body = await engine.decide(request(rng))
            body.pop("decision_id")
            lines.append(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        for key in [keys.RULE_ENGAGEMENT, keys.placement_stats_key("home_hero")]:
            counters = await sharded.read(engine.store, key)
            lines.append(orjson.dumps(counters, option=orjson.OPT_SORT_KEYS))
    finally:
        await engine.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--decisions", type=int, default=4_000)
    parser.add_argument("--backend", choices=["redis", "embedded"], default="redis")
    args = parser.parse_args()
    if args.backend == "embedded":
        lines = asyncio.run(run("embedded", args.decisions))
    else:
        with redis_server() as url:
            lines = asyncio.run(run(url, args.decisions))
    args.out.write_bytes(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    main()
