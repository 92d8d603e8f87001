"""Make the built-in profile dictionary (number 0), or check that it can be made again.

    python -m bench.profile_dictionary [--write]

The dictionary is trained with zstd (16 KB) on the compact layout (`compact.layout`) of
3,000 synthetic shoppers: `bench.memory`'s histories (10-20 views, clicks, carts,
purchases and searches over 30 days, in 1-3 favourite categories) folded through the
real feature code, with neutral item and category names (``p17``, ``c3``) so that it
holds the event type names and the layout's recurring bytes, not any catalog's names
(as `compact.DICTIONARY_V1` did). Its users are numbered from 900,000: the benchmarks'
own users are below. A third of them keep their whole history, the others only their
first 1, 2, 3, 5 or 8 events (`LENGTHS`): trained on whole histories alone, it wrote
one-event profiles 18 bytes larger (92 instead of 74; whole ones 3 bytes smaller), and
visitors of one or two events are many on a real site.

Never replace the shipped file: documents written with dictionary 0 would no longer
read (``tests/unit/test_compact_profile.py`` pins its sha256). A better built-in
dictionary is a new number, with code that knows it. Without ``--write`` this prints
the digest of a fresh training and of the shipped file, and the mean document size
each gives on 1,000 other shoppers.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
from pathlib import Path
from typing import Any

import zstandard

from bench.memory import user_history
from relevo.features import compact, dictionaries
from relevo.features.profile import FeatureParams, ProfileState, apply_event

SIZE = 16_384
USERS = 3_000
FIRST_USER = 900_000
NOW_MS = 1_767_225_600_000
LENGTHS: list[int | None] = [1, 1, 2, 3, 5, 8, None, None, None]
"""Events kept of a shopper's history, drawn for each (None: all of it)."""
SHIPPED = Path(dictionaries.__file__).parent / "profile-dictionary-0.zdict"


def neutral_items() -> list[dict[str, Any]]:
    """240 items in 12 categories, named like no catalog (``p17`` in ``c3``)."""
    return [
        {"item_id": f"p{n}", "category": f"c{n % 12}", "price": round(5 + (n * 7.31) % 195, 2)}
        for n in range(240)
    ]


def profile(user: int, items: list[dict[str, Any]], events: int | None) -> ProfileState:
    """A shopper's state: their first `events` events (None: all), categories filled in
    as the catalog would."""
    categories = {item["item_id"]: item["category"] for item in items}
    state = ProfileState(user_id=f"user-{user}")
    for record in user_history(user, items, NOW_MS)[:events]:
        if "item_id" in record:
            record["category"] = categories[record["item_id"]]
        for line in record.get("items", ()):
            line["category"] = categories[line["item_id"]]
        apply_event(state, record, FeatureParams())
    return state


def train(users: range) -> bytes:
    items = neutral_items()
    lengths = random.Random(1)
    samples = [compact.layout(profile(user, items, lengths.choice(LENGTHS))) for user in users]
    trained = zstandard.train_dictionary(SIZE, samples, level=dictionaries.LEVEL, threads=1)
    return trained.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="Write the shipped file (new only).")
    args = parser.parse_args()
    data = train(range(FIRST_USER, FIRST_USER + USERS))
    if args.write:
        if SHIPPED.exists():
            raise SystemExit(f"{SHIPPED} exists: a shipped dictionary is never replaced")
        SHIPPED.write_bytes(data)
    items = neutral_items()
    lengths = random.Random(2)
    others = [
        compact.layout(profile(user, items, lengths.choice(LENGTHS)))
        for user in range(800_000, 801_000)
    ]
    known = dictionaries.Dictionaries()
    known.add(1, data)
    for name, number in (("shipped", 0), ("fresh", 1)):
        size = statistics.fmean(1 + len(known.compress(raw, number)) for raw in others)
        print(f"{name}: {size:.1f} bytes a document")
    print("fresh sha256  ", hashlib.sha256(data).hexdigest())
    print("shipped sha256", hashlib.sha256(SHIPPED.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
