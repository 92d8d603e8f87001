"""The catalog: item upserts and the lookups that enrich events.

An event that names an item but not its category gets the catalog's category (and
line items their unit price) at ingestion, before it is logged: the log then holds
everything the feature code needs, so a replay gives the same profiles even if
the catalog changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from relevo.errors import InvalidInput
from relevo.events import Item, invalid_from, item_record
from relevo.store import keys
from relevo.store.base import Store


def validate_items(raws: Sequence[Any], received_ms: int) -> list[dict[str, Any]]:
    """All items valid → their records; else `InvalidInput` naming the first bad field."""
    records = []
    for index, raw in enumerate(raws):
        prefix = f"items[{index}]"
        if not isinstance(raw, dict):
            raise InvalidInput("an item must be a JSON object", field=prefix, code="invalid_item")
        try:
            item = Item.model_validate(raw)
        except ValidationError as error:
            raise invalid_from(error, prefix, code="invalid_item") from None
        records.append(item_record(item, received_ms))
    return records


async def get_items(store: Store, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The catalog entries that exist among `item_ids`."""
    unique = list(dict.fromkeys(item_ids))
    blobs = await store.get_many([keys.item_key(item_id) for item_id in unique])
    return {
        item_id: orjson.loads(blob) for item_id, blob in zip(unique, blobs, strict=True) if blob
    }


async def enrich(store: Store, events: Sequence[dict[str, Any]]) -> None:
    """Fill in categories and unit prices the client left out, from the catalog."""
    wanted: list[str] = []
    for record in events:
        if "item_id" in record and "category" not in record:
            wanted.append(record["item_id"])
        for line in record.get("items", ()):
            if "category" not in line or "price" not in line:
                wanted.append(line["item_id"])
    if not wanted:
        return
    catalog = await get_items(store, wanted)
    if not catalog:
        return
    for record in events:
        item = catalog.get(record.get("item_id", ""))
        if item is not None and "category" not in record and "category" in item:
            record["category"] = item["category"]
        for line in record.get("items", ()):
            item = catalog.get(line["item_id"])
            if item is None:
                continue
            if "category" not in line and "category" in item:
                line["category"] = item["category"]
            if "price" not in line and "price" in item:
                line["price"] = item["price"]
