"""The synthetic storefront: shoppers with hidden tastes who react to what they see.

Each shopper has a taste: a preference over the catalog's categories (most mass on
one or two of them), hidden from relevo. They browse in sessions: they view items
(mostly from categories they like), load pages where relevo fills a placement,
click shown items with a probability that grows with their taste for the item's
category, sometimes add to cart, and sometimes buy or abandon the cart. So a
placement that learns tastes from behaviour earns more clicks than one that
doesn't: the demo is an end-to-end check that relevo's personalization works.

Everything here is pure and seeded; `relevo.demo.runner` drives a live server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from relevo.demo.catalog import CATEGORIES, demo_items

BASE_CLICK = 0.01
TASTE_CLICK = 0.30
ADD_TO_CART = 0.35
PURCHASE = 0.45


@dataclass(slots=True)
class Shopper:
    user_id: str
    taste: dict[str, float]
    device: str
    rng: random.Random = field(repr=False)

    def favourite_category(self) -> str:
        categories = list(self.taste)
        return self.rng.choices(categories, weights=[self.taste[c] for c in categories])[0]

    def click_probability(self, category: str | None) -> float:
        return BASE_CLICK + TASTE_CLICK * self.taste.get(category or "", 0.0)


class Storefront:
    """The catalog, by category, and a population of shoppers."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.items = demo_items()
        self.category_of = {item["item_id"]: item["category"] for item in self.items}
        self.by_category: dict[str, list[str]] = {}
        for item in self.items:
            if item["in_stock"]:
                self.by_category.setdefault(item["category"], []).append(item["item_id"])
        self.price_of = {item["item_id"]: item["price"] for item in self.items}

    def shopper(self, number: int) -> Shopper:
        rng = random.Random(self.rng.random() + number)
        categories = list(CATEGORIES)
        weights = [rng.gammavariate(0.3, 1.0) for _ in categories]
        total = sum(weights) or 1.0
        taste = {c: w / total for c, w in zip(categories, weights, strict=True)}
        device = rng.choice(["mobile", "mobile", "desktop"])
        return Shopper(f"shopper-{number}", taste, device, rng)

    def browse(self, shopper: Shopper) -> str:
        """An item the shopper views on their own (search, category pages)."""
        return shopper.rng.choice(self.by_category[shopper.favourite_category()])

    def react(self, shopper: Shopper, shown: list[str]) -> list[tuple[str, str]]:
        """What the shopper does with items shown to them: (event type, item) pairs."""
        actions: list[tuple[str, str]] = []
        for item_id in shown:
            if shopper.rng.random() < shopper.click_probability(self.category_of.get(item_id)):
                actions.append(("click", item_id))
                if shopper.rng.random() < ADD_TO_CART:
                    actions.append(("add_to_cart", item_id))
                    if shopper.rng.random() < PURCHASE:
                        actions.append(("purchase", item_id))
                break  # one click per page load: the shopper follows it
        return actions

    def event(self, shopper: Shopper, kind: str, item_id: str, **extra: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind,
            "user_id": shopper.user_id,
            "context": {"device": shopper.device, "country": "FR"},
            **extra,
        }
        if kind == "purchase":
            event["items"] = [{"item_id": item_id, "quantity": 1, "price": self.price_of[item_id]}]
        else:
            event["item_id"] = item_id
        return event
