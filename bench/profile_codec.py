"""What a profile document costs: bytes, and instructions to encode and decode it.

    python -m bench.profile_codec [--callgrind] [--users 200] [--events N]

`bench.memory`'s synthetic shoppers (15 events each over 30 days, the demo catalog,
categories filled in as the catalog does) folded through the feature code; each is
encoded as Redis stores it (`profile.encode`) and decoded back, with the built-in
dictionary and, where the code has site dictionaries, with one trained on 2,000 other
shoppers of the same site (as ``relevo store train-dictionary`` does). ``--callgrind``
counts instructions per profile (a window per row, the cost of an empty window
subtracted); without it, microseconds (noise on a shared machine).

Runs on earlier versions too (no site dictionary then): put this file beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.memory import user_history
from bench.support import UNDER_CALLGRIND, callgrind_control, print_table, run_under_callgrind
from relevo.demo.catalog import demo_items
from relevo.features.profile import FeatureParams, ProfileState, apply_event, decode, encode

NOW_MS = 1_767_225_600_000


def shoppers(users: range, events: int | None = None) -> list[ProfileState]:
    """Shoppers of `bench.memory`'s histories (their first `events` events only)."""
    items = demo_items()
    categories = {item["item_id"]: item["category"] for item in items}
    states = []
    for user in users:
        state = ProfileState(user_id=f"user-{user}")
        for record in user_history(user, items, NOW_MS)[:events]:
            if "item_id" in record:
                record["category"] = categories[record["item_id"]]
            for line in record.get("items", ()):
                line["category"] = categories[line["item_id"]]
            apply_event(state, record, FeatureParams())
        states.append(state)
    return states


def site_dictionaries() -> Any:
    """A registry with a dictionary trained on other shoppers, active; None before V2."""
    try:
        import zstandard

        from relevo.features import compact, dictionaries, site_dictionaries
    except ImportError:
        return None
    others = shoppers(range(100_000, 102_000))
    layouts = [compact.layout(site_dictionaries.impersonal(state)) for state in others]
    known = dictionaries.Dictionaries()
    trained = zstandard.train_dictionary(
        site_dictionaries.SIZE, layouts, level=dictionaries.LEVEL, threads=1
    )
    known.add(1, trained.as_bytes())
    known.activate(1)
    return known


def rows(states: list[ProfileState]) -> list[tuple[str, Callable[[], Any], int]]:
    """(name, work, documents) of each measured window, in order."""
    found: list[tuple[str, Callable[[], Any], int]] = [("empty", lambda: None, 1)]
    registries: list[tuple[str, Any]] = [("built-in dictionary", None)]
    site = site_dictionaries()
    if site is not None:
        registries.append(("site dictionary", site))
    for name, known in registries:
        options = {} if known is None else {"dictionaries": known}
        blobs = [encode(state, **options) for state in states]
        found.append(
            (f"encode, {name}", lambda o=options: [encode(s, **o) for s in states], len(states))
        )
        found.append(
            (
                f"decode, {name}",
                lambda b=blobs, k=known: [decode(x, k) if k else decode(x) for x in b],
                len(states),
            )
        )
        found.append((f"bytes, {name}", lambda b=blobs: statistics.fmean(map(len, b)), 0))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events", type=int, help="Each shopper's first N events only.")
    args = parser.parse_args()
    if args.callgrind and os.environ.get(UNDER_CALLGRIND) != "1":
        arguments = ["--users", str(args.users), "--callgrind"]
        arguments += [] if args.events is None else ["--events", str(args.events)]
        _report(
            args, [dump["Ir"] for dump in run_under_callgrind("bench.profile_codec", arguments)]
        )
        return
    states = shoppers(range(args.users), args.events)
    table: list[list[str]] = []
    for name, work, documents in rows(states):
        if os.environ.get(UNDER_CALLGRIND) == "1":
            callgrind_control("--instr=on")
        started = time.perf_counter()
        result = work()
        elapsed = time.perf_counter() - started
        if os.environ.get(UNDER_CALLGRIND) == "1":
            callgrind_control("--instr=off")
            callgrind_control("--dump")
        if name.startswith("bytes"):
            table.append([name, f"{result:.1f} bytes"])
        elif name != "empty":
            table.append([name, f"{elapsed / documents * 1e6:.1f} µs"])
    if os.environ.get(UNDER_CALLGRIND) != "1":
        print_table(f"profile documents, {args.users} shoppers", ["measure", "value"], table)


def _report(args: argparse.Namespace, totals: list[int]) -> None:
    """The child's windows (instructions) beside the bytes, computed again here."""
    measured = rows(shoppers(range(args.users), args.events))
    empty = totals[0]
    table: list[list[str]] = []
    found: dict[str, float] = {}
    for (name, work, documents), total in zip(measured, totals, strict=True):
        if name.startswith("bytes"):
            found[name] = round(work(), 1)
            table.append([name, f"{found[name]:.1f}"])
        elif name != "empty":
            found[name] = round((total - empty) / documents)
            table.append([name, f"{found[name] / 1e6:.3f} M instructions"])
    print_table(f"profile documents, {args.users} shoppers, callgrind", ["measure", "value"], table)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
