"""A small synthetic catalog: 8 categories, 240 items, stable across runs (seeded)."""

from __future__ import annotations

import random
from typing import Any

CATEGORIES: dict[str, tuple[list[str], list[str], tuple[float, float]]] = {
    "shoes": (
        ["Trail runner", "City sneaker", "Hiking boot", "Sandal"],
        ["Acme", "Stride"],
        (40, 180),
    ),
    "electronics": (
        ["Headphones", "Smartwatch", "Speaker", "E-reader"],
        ["Volt", "Pixelle"],
        (30, 400),
    ),
    "books": (["Novel", "Cookbook", "Travel guide", "Comic"], ["Inkwell", "Paperleaf"], (8, 40)),
    "kitchen": (
        ["Chef knife", "Coffee grinder", "Cast-iron pan", "Teapot"],
        ["Forge", "Brew&Co"],
        (15, 150),
    ),
    "outdoor": (["Tent", "Backpack", "Water bottle", "Headlamp"], ["Summit", "Wildway"], (10, 300)),
    "beauty": (["Face cream", "Perfume", "Lip balm", "Shampoo"], ["Lumen", "Petal"], (5, 90)),
    "toys": (["Puzzle", "Building set", "Plush bear", "Board game"], ["Playful", "Kidz"], (10, 80)),
    "home": (["Lamp", "Cushion", "Vase", "Blanket"], ["Nest", "Hearth"], (12, 120)),
}
ITEMS_PER_CATEGORY = 30
ADJECTIVES = ["Classic", "Pro", "Light", "Deluxe", "Eco", "Compact", "Urban", "Vintage"]


def demo_items(seed: int = 7) -> list[dict[str, Any]]:
    """The demo catalog as item documents for ``POST /v1/items``."""
    rng = random.Random(seed)
    items = []
    for category, (kinds, brands, (low, high)) in CATEGORIES.items():
        for number in range(ITEMS_PER_CATEGORY):
            kind = kinds[number % len(kinds)]
            adjective = rng.choice(ADJECTIVES)
            items.append(
                {
                    "item_id": f"{category[:3]}-{number:03d}",
                    "title": f"{adjective} {kind.lower()}",
                    "category": category,
                    "tags": [kind.lower().replace(" ", "-"), adjective.lower()],
                    "brand": rng.choice(brands),
                    "price": round(rng.uniform(low, high), 2),
                    "currency": "EUR",
                    "in_stock": rng.random() > 0.08,
                    "text": f"{adjective} {kind.lower()} from the {category} department.",
                }
            )
    return items
