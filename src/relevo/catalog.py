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
from relevo.events import Item, ItemRemoval, invalid_from, item_record
from relevo.store import keys
from relevo.store.base import Store

REMOVED = "removed"
"""The field that makes an item record a removal (`DELETE /v1/items/{id}`): the log's
record is ``{"item_id", "updated_at", "removed": true}``, applied in log order with the
item's upserts and archived like one (the items table's ``document``)."""


def removal_record(item_id: str, received_ms: int) -> dict[str, Any]:
    return {"item_id": item_id, "updated_at": received_ms, REMOVED: True}


def validate_removal(raw: Any) -> list[str]:
    """`{"item_ids": [...]}` → the ids, each once; else `InvalidInput` naming the field."""
    try:
        removal = ItemRemoval.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error, code="invalid_item") from None
    return list(dict.fromkeys(removal.item_ids))


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


DECODED_MAX_ENTRIES = 10_000
DECODED_MAX_BYTES = 4_096
_decoded: dict[str, tuple[bytes, dict[str, Any]]] = {}
"""item id → (its stored document, decoded): see `_decoded_items`."""


async def _decoded_items(store: Store, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`get_items` for enrichment: each document read, but decoded once per content.

    Why: decoding the catalog documents a batch names was half of enrichment's cost (a
    batch of 500 events names ~200 items, ~9,000 instructions to decode each). A document
    is decoded again whenever its stored bytes differ from the ones decoded, so the result
    is what decoding gives, never stale (unlike `relevo.catalog_cache`, whose documents may
    lag another process's upsert by up to ``RELEVO_CATALOG_REFRESH``: what is logged must not
    depend on that). Bounded: documents over `DECODED_MAX_BYTES` are not kept, and past
    `DECODED_MAX_ENTRIES` items it starts over. The documents are shared: read-only.
    """
    unique = list(dict.fromkeys(item_ids))
    blobs = await store.get_many([keys.item_key(item_id) for item_id in unique])
    found: dict[str, dict[str, Any]] = {}
    for item_id, blob in zip(unique, blobs, strict=True):
        if not blob:
            continue
        known = _decoded.get(item_id)
        if known is not None and known[0] == blob:
            found[item_id] = known[1]
            continue
        doc = found[item_id] = orjson.loads(blob)
        if len(blob) <= DECODED_MAX_BYTES:
            if len(_decoded) >= DECODED_MAX_ENTRIES:
                _decoded.clear()
            _decoded[item_id] = (blob, doc)
    return found


async def enrich(store: Store, events: Sequence[dict[str, Any]]) -> None:
    """Fill in categories and unit prices the client left out, from the catalog."""
    # What lacks something is noted once, so filling in visits only that.
    records: list[dict[str, Any]] = []  # naming an item, without a category
    lines: list[dict[str, Any]] = []  # without a category or a unit price
    for record in events:
        if "category" not in record and "item_id" in record:
            records.append(record)
        if "items" in record:
            lines += [
                line for line in record["items"] if "category" not in line or "price" not in line
            ]
    if not records and not lines:
        return
    catalog = await _decoded_items(
        store, [record["item_id"] for record in records] + [line["item_id"] for line in lines]
    )
    if not catalog:
        return
    for record in records:
        item = catalog.get(record["item_id"])
        if item is not None and "category" in item:
            record["category"] = item["category"]
    for line in lines:
        item = catalog.get(line["item_id"])
        if item is None:
            continue
        if "category" not in line and "category" in item:
            line["category"] = item["category"]
        if "price" not in line and "price" in item:
            line["price"] = item["price"]
