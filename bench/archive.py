"""Parquet archive writer: CPU per archived record, column-wise vs the row-based reference.

The archiver (`relevo.archiver`) runs in whichever process holds the archive lease,
beside the API or a worker, so what it spends is taken from ingestion. This writes the
same batches of ``--batch`` logged events (``bench.ingest``'s mix after validation and
catalog enrichment, as the log holds them) three ways, round after round, in one process:

1. **reference**: the writer as it was, row dicts through `pa.Table.from_pylist`
   (`tests/support/archive_reference.py`);
2. **columnar**: `relevo.eventlog.archive.ArchiveWriter` (bodies decoded by msgspec into
   structs of the archived fields, columns through `pa.array`);
3. **Parquet only**: `write_atomically` of the batch's ready table (encode, zstd, fsync,
   rename): the floor both share.

It reports CPU time (``time.process_time``; fsync waits are not CPU) per 1,000 records,
the median over rounds, with the garbage collector tuned as ``relevo serve`` and
``relevo worker`` tune it (the archiver runs in one of them). ``--callgrind`` counts
instructions per record of each instead (stable to a percent or so on a busy machine).

``--log`` measures instead what reading an archive batch from the Redis log costs (on a
fresh `redis-server`): `RedisStreamLog.archive_batch` and `archive_done` of ``--batch``
records (the archiver asks for up to 50,000), against the reference: the same reads
through redis-py's ``xreadgroup`` (its reply callback builds a dict per record) and the
acknowledgement through its pipeline, as they were.

    python -m bench.archive [--batch 1000] [--rounds 30]
    python -m bench.archive --callgrind [--rounds 3]
    python -m bench.archive --log [--batch 50000] [--rounds 5]

Last line: ``{"reference_cpu_ms_per_1000": .., "columnar_cpu_ms_per_1000": .., ...}``, with
``--callgrind`` ``{"reference_instructions_per_record": .., ...}``, with ``--log``
``{"reference_read_cpu_ms_per_1000": .., "read_cpu_ms_per_1000": .., ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from tests.support.archive_reference import row_tables, row_write

from bench.ingest import make_batches
from bench.support import (
    UNDER_CALLGRIND,
    callgrind_control,
    print_table,
    redis_server,
    run_under_callgrind,
)
from relevo.archiver import ARCHIVE_BATCH
from relevo.demo.catalog import demo_items
from relevo.eventlog.archive import ArchiveWriter, write_atomically
from relevo.eventlog.base import LogRecord
from relevo.eventlog.redis_stream import ARCHIVE_GROUP, RedisStreamLog, _by_partition, _record
from relevo.events import Limits
from relevo.ingest import validate_events
from relevo.store.redis import RedisStore

WAYS = ("reference", "columnar", "parquet")
LOG_WAYS = ("reference", "log")
STEPS = ("read", "done")
LOG_LABELS = {"read": "read (archive_batch)", "done": "acknowledge (archive_done)"}
LABELS = {
    "reference": "row dicts, from_pylist (before): reference",
    "columnar": "msgspec structs, columns (ArchiveWriter)",
    "parquet": "Parquet write only (shared floor)",
}


def logged_events(count: int, now_ms: int) -> list[LogRecord]:
    """`count` events as the log holds them: validated, enriched, with stream positions."""
    catalog = {item["item_id"]: item for item in demo_items()}
    raws = [
        event
        for batch in make_batches(max(1, -(-count // 500)))
        for event in orjson.loads(batch)["events"]
    ][:count]
    records, _ = validate_events(raws, Limits(now_ms=now_ms), batch=True, received_ms=now_ms)
    logged = []
    for number, record in enumerate(records):
        assert record is not None
        if "item_id" in record:
            record["category"] = catalog[record["item_id"]]["category"]
        for line in record.get("items", ()):
            line["category"] = catalog[line["item_id"]]["category"]
            line["price"] = catalog[line["item_id"]]["price"]
        position = f"{number % 16}/{now_ms + number // 16}-0"
        logged.append(LogRecord("event", record["user_id"], orjson.dumps(record), position))
    return logged


def measure(batches: list[list[LogRecord]], rounds: int) -> dict[str, list[float]]:
    """CPU seconds of each way per round (all batches); under callgrind one dump per way
    and round, after one empty window (what switching the count on and off costs)."""
    counting = os.environ.get(UNDER_CALLGRIND) == "1"
    folder = Path(tempfile.mkdtemp(prefix="relevo-bench-archive-"))
    tables = [row_tables(batch)[("events", day)] for batch in batches for day in days(batch)]
    ways: dict[str, Callable[[], object]] = {
        "reference": lambda: [row_write(folder / "reference", batch) for batch in batches],
        "columnar": lambda: [ArchiveWriter(folder / "columnar").write(b) for b in batches],
        "parquet": lambda: [write_atomically(t, folder / "p.parquet") for t in tables],
    }
    spent: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        if counting:
            callgrind_control("--instr=on")
            callgrind_control("--instr=off")
            callgrind_control("--dump")
        for _ in range(rounds):
            for way in WAYS:
                if counting:
                    callgrind_control("--instr=on")
                started = time.process_time()
                ways[way]()
                spent[way].append(time.process_time() - started)
                if counting:
                    callgrind_control("--instr=off")
                    callgrind_control("--dump")
    finally:
        shutil.rmtree(folder)
    return spent


def days(batch: list[LogRecord]) -> list[str]:
    return [day for kind, day in row_tables(batch) if kind == "events"]


def count_under_callgrind(args: argparse.Namespace) -> dict[str, float]:
    """This script again, under callgrind: instructions of each way per round (median)."""
    arguments = ["--batch", str(args.batch), "--batches", str(args.batches)]
    arguments += ["--rounds", str(args.rounds)]
    totals = [dump["Ir"] for dump in run_under_callgrind("bench.archive", arguments)]
    if len(totals) != 1 + len(WAYS) * args.rounds:
        raise RuntimeError(f"expected {1 + len(WAYS) * args.rounds} dumps, found {len(totals)}")
    empty = totals.pop(0)
    return {
        way: statistics.median(totals[index :: len(WAYS)]) - empty for index, way in enumerate(WAYS)
    }


def report(unit: str, key: str, cost: dict[str, float], args: argparse.Namespace) -> None:
    """The table, then the JSON line: `cost` of each way per record (or 1,000 records)."""
    rows = [
        [LABELS[way], amount(cost[way]), f"{cost[way] / cost['reference']:.2f}"] for way in WAYS
    ]
    above = {way: cost[way] - cost["parquet"] for way in ("reference", "columnar")}
    rows.append(
        [
            "columnar vs reference, above the Parquet write",
            f"{amount(above['columnar'])} vs {amount(above['reference'])}",
            f"{above['columnar'] / above['reference']:.2f}",
        ]
    )
    print_table(
        f"archive writer, batches of {args.batch:,} events, {args.batches} per round, "
        f"{args.rounds} rounds",
        ["way", unit, "x reference"],
        rows,
    )
    print(
        json.dumps(
            {
                **{f"{way}_{key}": round(cost[way], 4) for way in WAYS},
                "columnar_vs_reference": round(cost["columnar"] / cost["reference"], 3),
                "columnar_vs_reference_above_parquet": round(
                    above["columnar"] / above["reference"], 3
                ),
                "batch": args.batch,
                "batches": args.batches,
                "rounds": args.rounds,
            }
        )
    )


async def reference_archive_batch(log: RedisStreamLog, limit: int) -> list[LogRecord]:
    """`RedisStreamLog.archive_batch` as it was (with records in every partition)."""
    records: list[LogRecord] = []
    for partition, stream in enumerate(log.streams):
        if len(records) >= limit:
            break
        for start in ("0", ">"):
            reply = await log.client.xreadgroup(
                ARCHIVE_GROUP, log.consumer, {stream: start}, count=limit - len(records)
            )
            entries = reply[0][1] if reply else []
            if entries:
                records.extend(_record(partition, i, f) for i, f in entries if f)
                break
    return records


async def reference_archive_done(log: RedisStreamLog, records: list[LogRecord]) -> None:
    """`RedisStreamLog.archive_done` as it was."""
    by_partition = _by_partition([r.position for r in records])
    async with log.client.pipeline(transaction=False) as pipe:
        for partition, ids in by_partition.items():
            pipe.xack(log.streams[partition], ARCHIVE_GROUP, *ids)
        await pipe.execute()
    for partition in by_partition:
        await log._trim(partition)


async def log_reads(url: str, records: list[LogRecord], rounds: int) -> dict[str, list[float]]:
    """CPU seconds of each way's read and acknowledgement of `records` per round, each
    round and way on a fresh prefix holding just those records."""
    spent: dict[str, list[float]] = {f"{way}_{step}": [] for way in LOG_WAYS for step in STEPS}
    prefixes = itertools.count()
    for _ in range(rounds):
        for way in LOG_WAYS:
            store = RedisStore(url, prefix=f"bench-archive-{next(prefixes)}")
            log = RedisStreamLog(store, workers=True)
            try:
                await log.open()
                for start in range(0, len(records), 1_000):
                    await log.append(records[start : start + 1_000])
                started = time.process_time()
                if way == "reference":
                    read = await reference_archive_batch(log, len(records))
                else:
                    read = await log.archive_batch(len(records))
                spent[f"{way}_read"].append(time.process_time() - started)
                if len(read) != len(records):
                    raise RuntimeError(f"{way}: read {len(read)} of {len(records)} records")
                started = time.process_time()
                if way == "reference":
                    await reference_archive_done(log, read)
                else:
                    await log.archive_done(read)
                spent[f"{way}_done"].append(time.process_time() - started)
            finally:
                await store.close()
    return spent


def report_log(args: argparse.Namespace, spent: dict[str, list[float]]) -> None:
    ms = {key: statistics.median(values) / args.batch * 1e6 for key, values in spent.items()}
    rows = []
    for step in STEPS:
        reference, ours = ms[f"reference_{step}"], ms[f"log_{step}"]
        rows.append([LOG_LABELS[step], amount(reference), amount(ours), f"{ours / reference:.2f}"])
    both = {way: ms[f"{way}_read"] + ms[f"{way}_done"] for way in LOG_WAYS}
    ratio = both["log"] / both["reference"]
    rows.append(["both", amount(both["reference"]), amount(both["log"]), f"{ratio:.2f}"])
    print_table(
        f"Redis log, archive batches of {args.batch:,} records, {args.rounds} rounds: "
        "CPU ms/1,000 records (median)",
        ["step", "redis-py (before): reference", "RedisStreamLog", "x reference"],
        rows,
    )
    print(
        json.dumps(
            {
                **{
                    f"reference_{step}_cpu_ms_per_1000": round(ms[f"reference_{step}"], 4)
                    for step in STEPS
                },
                **{f"{step}_cpu_ms_per_1000": round(ms[f"log_{step}"], 4) for step in STEPS},
                "log_vs_reference": round(ratio, 3),
                "batch": args.batch,
                "rounds": args.rounds,
            }
        )
    )


def amount(value: float) -> str:
    """Instructions whole, milliseconds to the microsecond."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--batch", type=int, help="Records per archive write (1,000; with --log 50,000)."
    )
    parser.add_argument("--batches", type=int, default=5, help="Batches per round.")
    parser.add_argument("--rounds", type=int, help="30; 3 with --callgrind")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--log", action="store_true", help="measure the Redis log's reads")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.callgrind else 5 if args.log else 30)
    args.batch = args.batch or (ARCHIVE_BATCH if args.log else 1_000)
    records = args.batch * args.batches
    if args.log:
        gc.set_threshold(100_000, 50, 100)
        logged = [
            LogRecord(r.kind, r.key, r.body)
            for r in logged_events(args.batch, int(time.time() * 1000))
        ]
        with redis_server() as url:
            report_log(args, asyncio.run(log_reads(url, logged, args.rounds)))
        return
    if args.callgrind and os.environ.get(UNDER_CALLGRIND) != "1":
        counted = count_under_callgrind(args)
        per_record = {way: total / records for way, total in counted.items()}
        report("instructions/record", "instructions_per_record", per_record, args)
        return
    gc.set_threshold(100_000, 50, 100)  # as `relevo serve` and `relevo worker` do
    logged = logged_events(records, int(time.time() * 1000))
    batches = [logged[i : i + args.batch] for i in range(0, len(logged), args.batch)]
    spent = measure(batches, args.rounds)
    per_1000 = {way: statistics.median(spent[way]) / records * 1e6 for way in WAYS}
    report("CPU ms/1,000 records", "cpu_ms_per_1000", per_1000, args)


if __name__ == "__main__":
    main()
