"""Memory: Redis bytes per user, and the API process's RSS over a soak.

1. **Redis bytes per user.** A fresh `redis-server`; the demo catalog and placements
   (``--rules`` adds the demo rules, whose outbox and timers are site-wide); then a
   realistic history for synthetic users (10-20 events each over 30 days, a few
   sessions, views, clicks, carts and purchases in 1-3 favourite categories) through
   the real apply path (an in-process `Engine` on Redis: validation, the log, profiles,
   marks, live models). `used_memory` is read after each of two sample sizes, once the
   log is archived (and so trimmed, as a running server does); the *marginal* bytes per
   user (the slope between the two) leaves out what the catalog and its item-level
   aggregates cost once, and the slope is checked against the average to show growth
   is linear. 1M users is extrapolated from that slope unless ``--users 1000000`` asks
   for the real thing. After the first sample the engine's automatic training runs
   once, as a server's background job would (`site_dictionaries.AutoTraining`: past
   ``RELEVO_PROFILE_DICTIONARY_MIN_PROFILES``, 10,000 by default): the users of the
   second sample are written with the site's own profile dictionary, those of the first
   with the built-in one, so the slope is what a site pays once it has trained one.
   `relevo store stats` gives the breakdown per structure (measured with ``MEMORY USAGE``).
   **At rest**: then the engine's clock moves past `RELEVO_DEDUPE_HORIZON` and one
   pass of the marks sweep runs as a server runs it (`MarksSweeper.run`): every
   user's marks go, and `used_memory` is read again. Every user is swept alike (all
   their marks are past the horizon, and both samples are drawn alike), so the
   marginal bytes per user at rest are the fresh slope minus the `used_memory` the
   pass freed per user; the fresh figures stay as they were measured. The pass's time
   and Redis CPU (``INFO cpu``, user + sys) are reported too.
2. **Soak.** `relevo serve` on Redis; a closed loop finds the maximum rate of a mix of
   single events (3 in 4 requests) and decisions, then an open loop sends half that
   rate for ``--soak-seconds``; the server's RSS (``/proc/<pid>/status``) is sampled
   every 2 s. Growth is measured from the end of the warm-up (a fifth of the soak, at
   least 20 s) to the end, each end the median of its last/first samples.

    python -m bench.memory [--users 100000] [--soak-seconds 600] [--soak-rate R] [--quick]

Last line: ``{"redis_bytes_per_user": .., "redis_bytes_per_user_at_rest": ..,
"soak_rss_growth": .., ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.support import data_dir, print_table, redis_server, relevo_process
from relevo.clock import SystemClock
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.demo.runner import PLACEMENTS, RULES
from relevo.engine import Engine
from relevo.features import site_dictionaries
from relevo.features.profile import COMPACT_V2
from relevo.store.redis import parse_document
from relevo.store.usage import usage_report

TARGET_BYTES_PER_USER = 0.3 * 2**30 / 1_000_000
"""Issue 7: at most 0.3 GiB of Redis per 1M users (Metarank reports 0.8 GiB)."""
BATCH = 2_000
CONCURRENT = 4
ARCHIVE_EVERY = 8
"""Archive (and so trim the log) every 8 x 4 batches (64k events, 4k per partition), as
a server does every 10 s. Why not once at the end: a trim (XTRIM MINID ~) drops at
most 10,000 entries of a partition per call, so one huge flush leaves most of the log
in Redis until later traffic trims it (see the report of issue 7)."""
DAY_MS = 86_400_000
KINDS = ["view"] * 70 + ["click"] * 15 + ["add_to_cart"] * 8 + ["remove_from_cart"] * 2
KINDS += ["purchase"] * 3 + ["search"] * 2


# -- synthetic histories -------------------------------------------------------------------
def user_history(user: int, items: list[dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    """10-20 events in 1-4 sessions over the last 30 days, mostly in favourite categories."""
    rng = random.Random(user)
    by_category: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_category.setdefault(item["category"], []).append(item)
    categories = sorted(by_category)
    favourites = rng.sample(categories, rng.randint(1, 3))
    count = rng.randint(10, 20)
    sessions = sorted(now_ms - rng.randrange(30 * DAY_MS) for _ in range(rng.randint(1, 4)))
    events: list[dict[str, Any]] = []
    for number in range(count):
        session = number * len(sessions) // count
        at = sessions[session] + number * rng.randint(5_000, 90_000)
        at = min(at, now_ms - 1000)
        kind = rng.choice(KINDS)
        category = rng.choice(favourites) if rng.random() < 0.8 else rng.choice(categories)
        item = rng.choice(by_category[category])
        event: dict[str, Any] = {
            "event_id": f"m{user}-{number}",
            "type": kind,
            "user_id": f"user-{user}",
            "session_id": f"user-{user}-s{session}",
            "timestamp": at,
            "context": {"device": rng.choice(["mobile", "desktop"]), "country": "FR"},
        }
        if kind == "purchase":
            event["items"] = [{"item_id": item["item_id"], "quantity": 1, "price": item["price"]}]
            event["value"] = item["price"]
        elif kind == "search":
            event["properties"] = {"query": category}
        else:
            event["item_id"] = item["item_id"]
        events.append(event)
    return events


# -- part 1: bytes per user -------------------------------------------------------------------
class ShiftedClock(SystemClock):
    """The wall clock moved forward by `advance`: the engine lives a horizon later
    without the benchmark waiting for it."""

    def __init__(self) -> None:
        self.shift_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.shift_ms

    def advance(self, ms: int) -> None:
        self.shift_ms += ms


def _batches(
    first: int, last: int, items: list[dict[str, Any]], now_ms: int
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for user in range(first, last):
        batch.extend(user_history(user, items, now_ms))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _ingest_users(
    engine: Engine, first: int, last: int, items: list[dict[str, Any]], now_ms: int
) -> int:
    """Send the users' histories in batches, a few at once (the committer groups them).

    The batches are made as they are sent: 750,000 users' histories made at once (11M
    dicts, 7 GB) held this process in collections of several seconds, long enough for
    a Redis reply to time out (``--users 1000000``)."""
    events = 0
    batches = _batches(first, last, items, now_ms)
    for number, group in enumerate(iter(lambda: list(islice(batches, CONCURRENT)), [])):
        await asyncio.gather(*(engine.ingest(batch) for batch in group))
        events += sum(map(len, group))
        if number % ARCHIVE_EVERY == ARCHIVE_EVERY - 1:
            await engine.archiver.flush()
    await engine.archiver.flush()  # archived means trimmed from the Redis log, as when serving
    return events


async def _used_memory(engine: Engine) -> int:
    info = await engine.store.client.info("memory")  # type: ignore[attr-defined]
    return int(info["used_memory"])


async def _redis_cpu_s(engine: Engine) -> float:
    info = await engine.store.client.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _sweep_at_rest(engine: Engine, clock: ShiftedClock) -> dict[str, Any]:
    """Move past the dedupe horizon and run one pass of the marks sweep as a server
    does; `used_memory` after it, with the pass's time and Redis CPU; then the time and
    Redis CPU of a pass with nothing left to drop."""
    clock.advance(engine.settings.dedupe_horizon + 60_000)
    cpu = await _redis_cpu_s(engine)
    started = time.perf_counter()
    done = await engine.marks_sweeper.run()
    elapsed = time.perf_counter() - started
    if done is None:
        raise RuntimeError("the marks sweep did not run")
    found = {
        "used": await _used_memory(engine),
        "seconds": elapsed,
        "redis_cpu_s": await _redis_cpu_s(engine) - cpu,
        "documents": done.documents,
        "swept": done.swept,
        "freed_bytes": done.freed_bytes,
        "rounds": done.rounds,
    }
    # Again at once: the steady state, where a pass finds few marks to drop.
    cpu = await _redis_cpu_s(engine)
    started = time.perf_counter()
    await engine.sweep_marks()
    found["again_seconds"] = time.perf_counter() - started
    found["again_redis_cpu_s"] = await _redis_cpu_s(engine) - cpu
    return found


async def _marks_inside(engine: Engine, users: int, sample: int) -> float:
    """Mean bytes of dedupe marks inside a profile document (Redis layout 2), sampled."""
    client = engine.store.client  # type: ignore[attr-defined]
    chosen = random.Random(5).sample(range(users), min(sample, users))
    blobs = await client.mget([f"relevo:{{u:user-{user}}}:profile" for user in chosen])
    return statistics.fmean(len(parse_document(blob)[2]) for blob in blobs) if blobs else 0.0


async def _profile_values(engine: Engine, users: range, sample: int) -> tuple[float, list[int]]:
    """Mean bytes of profile values (without marks) of a sample of `users`, and which
    dictionaries they name (-1: not a `COMPACT_V2` document)."""
    client = engine.store.client  # type: ignore[attr-defined]
    chosen = random.Random(7).sample(users, min(sample, len(users)))
    blobs = await client.mget([f"relevo:{{u:user-{user}}}:profile" for user in chosen])
    values = [parse_document(blob)[1] or b"" for blob in blobs]
    named = sorted({value[1] if value[:1] == bytes((COMPACT_V2,)) else -1 for value in values})
    return statistics.fmean(len(value) for value in values), named


async def _site_wide_bytes(engine: Engine) -> int:
    """MEMORY USAGE of the monitoring keys: site-wide and bounded (the observations
    stream keeps about 5,000 values per feature), shown apart from the per-user slope."""
    client = engine.store.client  # type: ignore[attr-defined]
    total = 0
    async for key in client.scan_iter(match="relevo:*monitoring*", count=1000):
        total += int(await client.memory_usage(key, samples=0) or 0)
    return total


async def measure_memory(
    redis_url: str, sizes: list[int], sample: int, rules: bool
) -> dict[str, Any]:
    directory = data_dir()
    settings = Settings(store=redis_url, data_dir=directory, redis_prefix="relevo")
    clock = ShiftedClock()
    engine = Engine(settings, clock)
    await engine.start(background=False)
    try:
        items = demo_items()
        await engine.upsert_items(items)
        await engine.put_config("placements", PLACEMENTS)
        if rules:  # their outbox (up to 1M messages) and armed timers are site-wide
            await engine.put_rules(RULES)
        await engine.archiver.flush()
        now_ms = int(time.time() * 1000)
        base = await _used_memory(engine)
        points: list[tuple[int, int, int, float]] = []  # users, events, used_memory, seconds
        site_wide: list[int] = []  # monitoring bytes at each point
        done = events = first = 0
        trained: site_dictionaries.Trained | None = None
        values: list[tuple[float, list[int]]] = []  # profile values of each sample's users
        for size in sizes:
            started = time.perf_counter()
            events += await _ingest_users(engine, done, size, items, now_ms)
            elapsed = time.perf_counter() - started
            done = size
            points.append((size, events, await _used_memory(engine), elapsed))
            site_wide.append(await _site_wide_bytes(engine))
            print(
                f"  {size:,} users, {events:,} events: used_memory {points[-1][2]:,} "
                f"({elapsed:.0f} s for this step)",
                file=sys.stderr,
            )
            if trained is None:  # what a server's background job does (once) past the threshold
                trained = await engine.dictionary_training.run_once()
                if trained is not None:
                    print(f"  trained {trained.to_dict()}", file=sys.stderr)
                else:
                    print("  no site dictionary trained (below the threshold)", file=sys.stderr)
                points[-1] = (size, events, await _used_memory(engine), elapsed)
            values.append(await _profile_values(engine, range(first, size), 500))
            first = size
        report = usage_report(await engine.store.usage(sample))
        marks_inside = await _marks_inside(engine, done, 500)
        at_rest = await _sweep_at_rest(engine, clock)
    finally:
        await engine.stop()
    (n1, _, m1, _), (n2, e2, m2, _) = points[0], points[-1]
    marginal = (m2 - m1) / (n2 - n1) if n2 > n1 else (m2 - base) / n2
    average = (m2 - base) / n2
    seconds = sum(point[3] for point in points)
    freed_per_user = (m2 - at_rest["used"]) / n2
    return {
        "at_rest": at_rest,
        "marginal_at_rest": marginal - freed_per_user,
        "average_at_rest": (at_rest["used"] - base) / n2,
        "base": base,
        "points": points,
        "marginal": marginal,
        "average": average,
        "first_average": (m1 - base) / n1,
        "events_per_user": e2 / n2,
        "events_per_s": e2 / seconds,
        "report": report,
        "users": n2,
        "site_wide": site_wide,
        "marks_inside": marks_inside,
        "trained": trained,
        "values": values,
    }


# -- part 2: soak ---------------------------------------------------------------------------
def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Mix:
    """The soak's requests: 3 single events (browser-style) for each decision."""

    def __init__(self, items: list[dict[str, Any]], users: int = 200_000) -> None:
        self.items = [item["item_id"] for item in items]
        self.users = users
        self.rng = random.Random(3)
        self.number = 0

    def next(self) -> tuple[str, bytes]:
        self.number += 1
        user = f"soak-{self.rng.randrange(self.users)}"
        if self.number % 4 == 0:
            body = {"user_id": user, "placement": "home_recs", "context": {"device": "mobile"}}
            return "/v1/decide", orjson.dumps(body)
        kind = self.rng.choice(KINDS[:-2])  # no search: every event names an item
        event = {
            "event_id": f"soak-{self.number}",
            "type": kind,
            "user_id": user,
            "session_id": user + "-s",
            "item_id": self.rng.choice(self.items),
        }
        return "/v1/events", orjson.dumps(event)


HEADERS = {"content-type": "application/json"}


async def max_rate(url: str, mix: Mix, seconds: float, concurrency: int = 8) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        done = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                path, body = mix.next()
                response = await client.post(path, content=body, headers=HEADERS)
                done += response.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def soak(
    url: str, pid: int, mix: Mix, rate: float, seconds: float
) -> tuple[list[tuple[float, int]], int, int, int]:
    """Send `rate` requests/s (open loop) for `seconds`; sample RSS every 2 s."""
    samples: list[tuple[float, int]] = []
    sent = errors = late = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        in_flight = asyncio.Semaphore(64)
        started = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()

        async def one(path: str, body: bytes) -> None:
            nonlocal errors
            try:
                response = await client.post(path, content=body, headers=HEADERS)
                errors += response.status_code != 200
            except httpx.HTTPError:
                errors += 1
            finally:
                in_flight.release()

        async def sampler() -> None:
            while time.perf_counter() - started < seconds:
                samples.append((time.perf_counter() - started, rss_bytes(pid)))
                await asyncio.sleep(2.0)
            samples.append((time.perf_counter() - started, rss_bytes(pid)))

        sampling = asyncio.create_task(sampler())
        while (elapsed := time.perf_counter() - started) < seconds:
            due = sent / rate
            if due > elapsed:
                await asyncio.sleep(due - elapsed)
            if in_flight.locked():
                late += 1  # the server is behind: wait rather than pile up requests
            await in_flight.acquire()
            path, body = mix.next()
            task = asyncio.create_task(one(path, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.gather(*tasks)
        await sampling
    return samples, sent, errors, late


def rss_growth(samples: list[tuple[float, int]], warmup: float) -> tuple[int, int, float]:
    after = [rss for at, rss in samples if at >= warmup]
    start = int(statistics.median(after[:3]))
    end = int(statistics.median(after[-3:]))
    return start, end, (end - start) / start


def measure_soak(
    redis_url: str, seconds: float, probe_seconds: float, rate: float | None = None
) -> dict[str, Any]:
    env = {
        "RELEVO_STORE": redis_url,
        "RELEVO_DATA_DIR": str(data_dir()),
        "RELEVO_DEMO_CATALOG": "true",
        "RELEVO_REDIS_PREFIX": "soak",
        "RELEVO_RATE_LIMIT": "0",
    }
    items = demo_items()
    with relevo_process(env) as (url, pid):
        with httpx.Client(base_url=url, timeout=30) as client:
            client.put("/v1/placements", json=PLACEMENTS).raise_for_status()
            client.put("/v1/rules", json=RULES).raise_for_status()
        mix = Mix(items)
        peak = asyncio.run(max_rate(url, mix, probe_seconds))
        rate = rate or peak / 2
        print(f"  max {peak:,.0f} requests/s; soaking at {rate:,.0f}/s", file=sys.stderr)
        samples, sent, errors, late = asyncio.run(soak(url, pid, mix, rate, seconds))
    warmup = max(20.0, seconds / 5)
    start, end, growth = rss_growth(samples, warmup)
    return {
        "max_rps": peak,
        "rate": rate,
        "seconds": seconds,
        "warmup": warmup,
        "sent": sent,
        "errors": errors,
        "late": late,
        "rss_start": start,
        "rss_end": end,
        "rss_first": samples[0][1],
        "growth": growth,
    }


# -- report ---------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50_000, help="Users of the larger sample.")
    parser.add_argument(
        "--rules", action="store_true", help="Also run the demo rules (outbox, timers)."
    )
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--sample", type=int, default=200, help="Keys measured per kind.")
    parser.add_argument("--quick", action="store_true", help="10k users, a 2-minute soak.")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument(
        "--soak-rate",
        type=float,
        help="Requests/s of the soak (default: half the measured maximum); a fixed rate "
        "compares two runs on a shared machine, whose maximum varies with its load.",
    )
    args = parser.parse_args()
    users = 10_000 if args.quick else args.users
    soak_seconds = 120.0 if args.quick else args.soak_seconds
    sizes = [users // 4, users]

    with redis_server() as redis_url:
        memory = asyncio.run(measure_memory(redis_url, sizes, args.sample, args.rules))
    soaked = None
    if not args.skip_soak:
        with redis_server() as redis_url:
            soaked = measure_soak(
                redis_url, soak_seconds, 5.0 if args.quick else 10.0, args.soak_rate
            )

    per_user = memory["marginal"]
    report = memory["report"]
    n = memory["users"]
    rows = [
        [
            kind + (" (per user)" if entry["per_user"] else ""),
            f"{entry['keys']:,}",
            f"{entry['bytes']:,}",
            f"{entry['bytes'] / n:,.1f}",
            str(entry["without_ttl"]) if entry["per_user"] else "-",
        ]
        for kind, entry in report["kinds"].items()
    ]
    user_bytes = sum(e["bytes"] for e in report["kinds"].values() if e["per_user"])
    rows.append(["per-user structures", "", f"{user_bytes:,}", f"{user_bytes / n:,.1f}", ""])
    print_table(
        f"redis: {n:,} users, {memory['events_per_user']:.1f} events each "
        f"(MEMORY USAGE, {args.sample} keys per kind measured, the rest extrapolated)",
        ["structure", "keys", "bytes", "bytes/user", "no TTL"],
        rows,
    )
    gib_per_million = per_user * 1_000_000 / 2**30
    # Marks live for RELEVO_DEDUPE_HORIZON (7 days): here every user's are fresh. Inside
    # the profile document (the Redis layout since format 2) they leave at the user's
    # next write after the horizon, or at the next marks sweep for an idle user (measured
    # below: "at rest"); under their own key (earlier layouts) they expired.
    marks = report["kinds"].get("profile marks", {"bytes": 0})["bytes"] / n
    at_rest = per_user - marks - memory["marks_inside"]
    sweep = memory["at_rest"]
    summary = [
        ["used_memory before users (catalog, config)", f"{memory['base']:,} bytes"],
        *[
            [f"used_memory at {size:,} users ({events:,} events)", f"{used:,} bytes"]
            for size, events, used, _ in memory["points"]
        ],
        ["bytes/user, marginal (slope between the samples)", f"{per_user:,.0f}"],
        [
            "bytes/user, average at the small / large sample",
            f"{memory['first_average']:,.0f} / {memory['average']:,.0f}",
        ],
        [
            "1M users (extrapolated from the slope)" if n < 1_000_000 else "1M users (measured)",
            f"{gib_per_million:.3f} GiB (target ≤ 0.3, Metarank 0.8)",
        ],
        ["dedupe marks inside a profile document, mean", f"{memory['marks_inside']:,.0f} bytes"],
        *[
            [
                f"profile value (no marks), mean, users {first:,}-{size:,} (dictionaries {named})",
                f"{mean:,.1f} bytes",
            ]
            for first, size, (mean, named) in zip(
                [0, *sizes], sizes, memory["values"], strict=False
            )
        ],
        [
            "site dictionary trained after the first sample",
            "none"
            if memory["trained"] is None
            else f"{memory['trained'].number} ({memory['trained'].bytes:,} bytes, on "
            f"{memory['trained'].profiles:,} profiles: held-out documents "
            f"{memory['trained'].mean_bytes_before:.1f} -> {memory['trained'].mean_bytes_after:.1f}"
            " bytes)",
        ],
        ["bytes/user without marks (written again after the horizon)", f"{at_rest:,.0f}"],
        [
            f"used_memory at rest: {n:,} users after a marks sweep past the horizon",
            f"{sweep['used']:,} bytes",
        ],
        [
            "bytes/user at rest, marginal (the slope less what the sweep freed per user)",
            f"{memory['marginal_at_rest']:,.0f}",
        ],
        ["bytes/user at rest, average", f"{memory['average_at_rest']:,.0f}"],
        [
            "1M users at rest (extrapolated from the slope)",
            f"{memory['marginal_at_rest'] * 1_000_000 / 2**30:.3f} GiB",
        ],
        [
            "marks sweep: profiles seen / swept / mark bytes dropped",
            f"{sweep['documents']:,} / {sweep['swept']:,} / {sweep['freed_bytes']:,} "
            f"in {sweep['rounds']} rounds",
        ],
        [
            "marks sweep: time / Redis CPU (INFO cpu, user + sys)",
            f"{sweep['seconds']:.2f} s / {sweep['redis_cpu_s']:.2f} s",
        ],
        [
            "marks sweep again, nothing to drop: time / Redis CPU",
            f"{sweep['again_seconds']:.2f} s / {sweep['again_redis_cpu_s']:.2f} s",
        ],
        [
            "site-wide monitoring keys at each sample (bounded, in the slope)",
            " / ".join(f"{size:,}" for size in memory["site_wide"]) + " bytes",
        ],
        ["apply rate in process", f"{memory['events_per_s']:,.0f} events/s"],
    ]
    if soaked is not None:
        summary += [
            ["soak: max rate (3 events : 1 decision)", f"{soaked['max_rps']:,.0f} requests/s"],
            [
                "soak: rate asked / achieved",
                f"{soaked['rate']:,.0f} / {soaked['sent'] / soaked['seconds']:,.0f} requests/s "
                f"for {soaked['seconds']:.0f} s",
            ],
            [
                "soak: requests / errors / sent with 64 in flight",
                f"{soaked['sent']:,} / {soaked['errors']} / {soaked['late']}",
            ],
            [
                "soak: RSS at start / after warm-up / end",
                f"{soaked['rss_first'] / 2**20:,.1f} / {soaked['rss_start'] / 2**20:,.1f} / "
                f"{soaked['rss_end'] / 2**20:,.1f} MiB",
            ],
            ["soak: RSS growth after warm-up", f"{soaked['growth']:+.1%} (target < 10%)"],
        ]
    print_table("memory", ["measure", "value"], summary)
    print(
        json.dumps(
            {
                "redis_bytes_per_user": round(per_user, 1),
                "soak_rss_growth": None if soaked is None else round(soaked["growth"], 4),
                "redis_gib_per_million_users": round(gib_per_million, 4),
                "redis_bytes_per_user_marks_expired": round(at_rest, 1),
                "extrapolated": n < 1_000_000,
                "users": n,
                "events_per_user": round(memory["events_per_user"], 2),
                "average_bytes_per_user": round(memory["average"], 1),
                "per_user_structures_bytes_per_user": round(user_bytes / n, 1),
                "soak_seconds": None if soaked is None else soaked["seconds"],
                "soak_rate": None if soaked is None else round(soaked["rate"]),
                "soak_achieved_rate": None
                if soaked is None
                else round(soaked["sent"] / soaked["seconds"]),
                "soak_errors": None if soaked is None else soaked["errors"],
                "site_wide_monitoring_bytes": memory["site_wide"][-1],
                "redis_bytes_per_user_at_rest": round(memory["marginal_at_rest"], 1),
                "average_bytes_per_user_at_rest": round(memory["average_at_rest"], 1),
                "marks_sweep_seconds": round(sweep["seconds"], 3),
                "marks_sweep_redis_cpu_seconds": round(sweep["redis_cpu_s"], 3),
                "marks_sweep_again_redis_cpu_seconds": round(sweep["again_redis_cpu_s"], 3),
                "profile_value_bytes": [round(mean, 1) for mean, _ in memory["values"]],
                "site_dictionary": None
                if memory["trained"] is None
                else memory["trained"].to_dict(),
            }
        )
    )


if __name__ == "__main__":
    main()
