"""How much one event says about an item, for the live models.

The same scale as the profile's category affinities (view 1, click 2, add to
cart 3, purchase 5), so "trending" and "affinity" agree on what matters.
Custom event types that name an item count 1; impressions, removals from the
cart and consent events say nothing about liking an item and count 0.
"""

from __future__ import annotations

from typing import Any

from relevo.features.profile import DEFAULT_AFFINITY_WEIGHTS, NOT_INTERACTIONS, event_lines


def event_weight(kind: str) -> float:
    """The weight of an event of type `kind` for the item(s) it names.

    >>> event_weight("purchase"), event_weight("impression"), event_weight("wishlist")
    (5.0, 0.0, 1.0)
    """
    if kind in NOT_INTERACTIONS:
        return 0.0
    return DEFAULT_AFFINITY_WEIGHTS.get(kind, 1.0)


def event_items(record: dict[str, Any]) -> list[str]:
    """The distinct items an event is about, in order."""
    if "items" not in record:  # the common case, on the ingest hot path
        item_id = record.get("item_id")
        return [] if item_id is None else [item_id]
    return list(dict.fromkeys(line[0] for line in event_lines(record)))
