"""Redis's own work per profile document: instructions of `redis-server` (run under
callgrind) per read, first write and update of `RedisStore`, which the machine's load
does not change (the CPU of a Redis on a shared machine does).

Documents as a worker writes them: one 8-byte mark per write, a ~340-byte value, a TTL,
in batches of 1,000. ``--layout-unknown`` writes as after a read that did not report
the current layout (`DocWrite.current_layout` false: `_DOC_CAS` for every write), the
way every write went before that flag.

    python -m bench.redis_doc_writes [--documents 5000] [--layout-unknown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.support import callgrind_control, callgrind_totals, print_table, redis_under_callgrind
from relevo.store import keys
from relevo.store.base import DocRead, DocWrite
from relevo.store.redis import RedisStore

BATCH = 1_000
NOW = 1_767_225_600_000
DAY = 86_400_000
VALUE = os.urandom(340)


async def measure(
    url: str, pid: int, folder: Path, documents: int, current: bool
) -> dict[str, float]:
    store = RedisStore(url, prefix="bench")
    users = [f"user-{number}" for number in range(documents)]

    async def read(tag: str) -> None:
        for start in range(0, documents, BATCH):
            await store.docs_read(
                [
                    DocRead(
                        keys.profile_key(u), keys.profile_marks_key(u), [keys.event_mark(u + tag)]
                    )
                    for u in users[start : start + BATCH]
                ]
            )

    async def write(version: int) -> None:
        for start in range(0, documents, BATCH):
            done = await store.docs_write(
                [document_write(u, version, current) for u in users[start : start + BATCH]]
            )
            if not all(done):
                raise RuntimeError("a write conflicted: nothing else writes these documents")

    phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("read (document absent)", lambda: read("a")),
        ("first write", lambda: write(0)),
        ("read", lambda: read("b")),
        ("update", lambda: write(1)),
        ("update again", lambda: write(2)),
    ]
    counted: dict[str, float] = {}
    try:
        await write_warm(store)
        for name, work in phases:
            callgrind_control("--zero", pid)
            callgrind_control("--instr=on", pid)
            await work()
            counted[name] = instructions_counted(pid, folder) / documents
    finally:
        await store.close()
    return counted


def document_write(user: str, version: int, current: bool) -> DocWrite:
    return DocWrite(
        keys.profile_key(user), keys.profile_marks_key(user), version, VALUE,
        now_ms=NOW + version * 1000, marks=[keys.event_mark(f"{user}-{version}")],
        ttl_ms=90 * DAY, marks_horizon_ms=7 * DAY, current_layout=current,
    )  # fmt: skip


def instructions_counted(pid: int, folder: Path) -> int:
    """Redis's instructions since counting went on: off, dumped, the dump's total."""
    callgrind_control("--instr=off", pid)
    callgrind_control("--dump", pid)
    dumps = sorted(folder.glob("redis.out.*"), key=lambda dump: int(dump.suffix[1:]))
    return callgrind_totals(dumps[-1])["Ir"]


async def write_warm(store: RedisStore) -> None:
    """Load the scripts before counting (a first use loads them: not a document's cost)."""
    await store.docs_write([DocWrite("warm", "warm:marks", 0, b"x", now_ms=NOW, marks=[b"m"])])
    await store.docs_write(
        [DocWrite("warm", "warm:marks", 1, b"y", now_ms=NOW, marks=[b"n"], current_layout=True)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=5_000)
    parser.add_argument("--layout-unknown", action="store_true", help="every write by _DOC_CAS")
    args = parser.parse_args()
    with redis_under_callgrind() as (url, pid, folder):
        counted = asyncio.run(measure(url, pid, folder, args.documents, not args.layout_unknown))
    print_table(
        f"Redis instructions per document, {args.documents:,} documents, batches of {BATCH:,}"
        + (" (layout unknown: _DOC_CAS)" if args.layout_unknown else ""),
        ["operation", "k instructions/document"],
        [[name, f"{value / 1e3:.1f}"] for name, value in counted.items()],
    )
    print(json.dumps({name: round(value) for name, value in counted.items()}))


if __name__ == "__main__":
    main()
