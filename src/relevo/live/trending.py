"""Trending items: interaction weights decayed in event time, overall and per category.

Decayed sorted sets overall (split by item over `keys.TRENDING_SHARDS` sets so no
Redis Cluster slot is hot; a read merges their tops) and one per category, each bounded
(`OVERALL_MAX` per shard, `CATEGORY_MAX`: the tail of a long catalog is not
"trending"). With a one-day
half-life (`RELEVO_TRENDING_HALF_LIFE`), a purchase a day ago weighs like a click
now. This is what a brand-new visitor gets first, per category of the page.
"""

from __future__ import annotations

from typing import Any

from relevo.live.accumulator import DecayedBatch
from relevo.store import keys

OVERALL_MAX = 1000
CATEGORY_MAX = 300
_NO_LINES: dict[str, str | None] = {}
"""The line categories of an event without line items (read only)."""


def add_counts(
    overall: DecayedBatch,
    by_category: DecayedBatch,
    record: dict[str, Any],
    items: list[str],
    weight: float,
) -> None:
    """Add one event's `items` to the overall and per-category trending sets.

    Line items carry their own category; a single-item event the event's category
    (filled from the catalog at ingestion).
    """
    ts: int = record["timestamp"]
    lines = (
        {line.get("item_id"): line.get("category") for line in record["items"]}
        if "items" in record
        else _NO_LINES  # most events: no comprehension made and run over nothing
    )
    for item in items:
        overall.add(keys.trending_overall_key(item), item, weight, ts)
        category = lines.get(item) or record.get("category")
        if category is not None:
            by_category.add(keys.trending_key(category), item, weight, ts)
