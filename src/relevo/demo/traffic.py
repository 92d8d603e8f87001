"""Synthetic storefront traffic on the demo catalog, with a structure worth learning.

Each shopper has a favourite category and a second one. A session picks one of
them and browses it: shown four items (impressions: the "next" item of the
category, another of it and two from elsewhere), the shopper clicks the next one
(more often in the favourite category), views it, sometimes adds it to the cart
and sometimes buys. So sessions show A → B patterns, and clicks depend on taste.
Events carry no category: ingestion fills it from the catalog, as for any client.
Seeded, so tests and benches get the same events every run; no real data.
"""

from __future__ import annotations

import random
from collections import defaultdict
from functools import partial
from typing import Any

from relevo.demo.catalog import demo_items

MINUTE_MS = 60_000


def demo_traffic(
    n_users: int = 200,
    *,
    start_ms: int = 1_767_225_600_000,
    days: int = 14,
    sessions_per_user: tuple[int, int] = (1, 4),
    steps_per_session: tuple[int, int] = (2, 6),
    seed: int = 11,
) -> list[dict[str, Any]]:
    """Event dicts (as clients send them, with ids and epoch-ms timestamps), in time order."""
    rng = random.Random(seed)
    by_category: dict[str, list[str]] = defaultdict(list)
    for item in demo_items():
        by_category[item["category"]].append(item["item_id"])
    categories = sorted(by_category)
    events: list[dict[str, Any]] = []
    for number in range(n_users):
        user = f"shopper-{number}"
        tastes = rng.sample(categories, 2)
        device = rng.choice(["mobile", "desktop"])
        country = rng.choice(["FR", "DE", "US"])
        at = start_ms + rng.randrange(days * 24 * 60) * MINUTE_MS
        for session in range(rng.randint(*sessions_per_user)):
            category = tastes[0] if rng.random() < 0.75 else tastes[1]
            items = by_category[category]
            others = [c for c in categories if c != category]
            position = rng.randrange(len(items))
            context = {"device": device, "country": country, "page": f"/c/{category}"}
            emit = partial(_emit, events, user, f"{user}-s{session}", context)

            for _ in range(rng.randint(*steps_per_session)):
                follows = (position + 1) % len(items)
                # Shown: the next item of the category, another one, and two from elsewhere.
                shown = [items[follows], rng.choice(items)]
                shown += [rng.choice(by_category[rng.choice(others)]) for _ in range(2)]
                for item_id in sorted(set(shown)):
                    emit("impression", item_id, at)
                if rng.random() < (0.85 if category == tastes[0] else 0.5):
                    position = follows
                    chosen = items[position]
                    at += rng.randrange(5, 30) * 1000
                    emit("click", chosen, at)
                    emit("view", chosen, at + 500)
                    if rng.random() < 0.15:
                        at += rng.randrange(1, 3) * MINUTE_MS
                        emit("add_to_cart", chosen, at)
                        if rng.random() < 0.4:
                            emit("purchase", chosen, at + MINUTE_MS)
                at += rng.randrange(1, 4) * MINUTE_MS
            at += rng.randrange(2, 48) * 60 * MINUTE_MS
    events.sort(key=lambda event: (event["timestamp"], event["event_id"]))
    return events


def _emit(
    events: list[dict[str, Any]],
    user: str,
    session_id: str,
    context: dict[str, Any],
    kind: str,
    item: str,
    at: int,
) -> None:
    events.append(
        {
            "event_id": f"{user}-{len(events)}",
            "type": kind,
            "user_id": user,
            "session_id": session_id,
            "timestamp": at,
            "item_id": item,
            "context": context,
        }
    )
