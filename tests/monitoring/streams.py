"""A replayable synthetic stream of shop events whose purchase values can be shifted.

Each shopper views, adds to cart and buys once; new shoppers in every segment keep
profile features stationary (a shopper's history only grows within its segment).
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARES = (0.6, 0.35, 0.05)
COUNTRIES = ("FR", "DE", "ES")
ITEMS = ("sho-001", "sho-002", "boo-001", "boo-002", "ele-001")


def shoppers(
    rng: np.random.Generator, count: int, start_ms: int, *, prefix: str, value_scale: float = 1.0
) -> list[dict[str, Any]]:
    """`count` shoppers' events (3 each: view, add_to_cart, purchase), time-ordered."""
    items = rng.choice(len(ITEMS), size=count)
    devices = rng.choice(len(DEVICES), size=count, p=DEVICE_SHARES)
    countries = rng.choice(len(COUNTRIES), size=count)
    values = rng.lognormal(mean=3.5, sigma=0.5, size=count) * value_scale
    events: list[dict[str, Any]] = []
    for n in range(count):
        user = f"{prefix}-{n}"
        context = {"device": DEVICES[devices[n]], "country": COUNTRIES[countries[n]]}
        at = start_ms + n * 10
        for offset, kind in enumerate(("view", "add_to_cart", "purchase")):
            event: dict[str, Any] = {
                "event_id": f"{user}-{kind}",
                "type": kind,
                "user_id": user,
                "item_id": ITEMS[items[n]],
                "timestamp": at + offset,
                "context": context,
            }
            if kind == "purchase":
                event["value"] = round(float(values[n]), 2)
            events.append(event)
    return events
