"""What training reads from the Parquet archive: event records, interactions, the catalog.

The archive stores events with typed columns (`relevo.eventlog.archive`); training
turns them back into *records*, the exact form the log holds and the feature code
reads, so replaying them through `apply_event` gives the profiles live traffic gave.
From the same records come the models' interactions (one per item an event names,
keyed like profiles: user id, else anonymous id) and per item its category and
text, from the newest archived catalog document, else from the events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from relevo.clock import from_datetime
from relevo.eventlog.archive import read_events, read_items
from relevo.events import profile_key
from relevo.live.weights import event_items, event_weight
from relevo.models.interactions import Interactions

#: Catalog fields that describe an item in words, for content models.
TEXT_FIELDS = ("title", "category", "brand", "text")


@dataclass(frozen=True)
class TrainingData:
    """Everything one training run reads, and where it came from."""

    records: list[dict[str, Any]]
    interactions: Interactions
    catalog: dict[str, dict[str, Any]]
    #: Category per interactions item index (None when unknown).
    item_categories: list[str | None]
    first_ms: int | None
    last_ms: int | None

    def counts(self) -> dict[str, int]:
        return {
            "events": len(self.records),
            "interactions": len(self.interactions),
            "users": self.interactions.n_users,
            "items": self.interactions.n_items,
            "catalog_items": len(self.catalog),
        }


def load(archive: Path, *, since_ms: int | None = None) -> TrainingData:
    """Read the archive (events at or after `since_ms`, when given) for training."""
    where = "true" if since_ms is None else f"epoch_ms(timestamp) >= {int(since_ms)}"
    records = list(archive_records(read_events(archive, where)))
    return from_records(records, read_items(archive))


def from_records(
    records: list[dict[str, Any]], catalog: dict[str, dict[str, Any]] | None = None
) -> TrainingData:
    """Training data from event records in time order (and catalog documents)."""
    catalog = catalog or {}
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    types: list[str] = []
    seen_category: dict[str, str] = {}
    for record in records:
        if not event_weight(record["type"]):
            continue
        user = profile_key(record)
        line_categories = {
            line["item_id"]: line.get("category") for line in record.get("items", ())
        }
        for item in event_items(record):
            users.append(user)
            items.append(item)
            times.append(record["timestamp"])
            types.append(record["type"])
            category = line_categories.get(item) or record.get("category")
            if category is not None:
                seen_category[item] = category
    item_ids = list(dict.fromkeys(items))
    text = {item: item_text(catalog[item]) for item in item_ids if item in catalog}
    interactions = Interactions.from_arrays(
        np.array(users, dtype=str),
        np.array(items, dtype=str),
        np.array(times, dtype=np.int64),
        np.array(types, dtype=str),
        item_text=text if any(text.values()) else None,
    )
    categories: list[str | None] = []
    for item in interactions.item_ids.tolist():
        known = catalog.get(item, {}).get("category")
        categories.append(known if known is not None else seen_category.get(item))
    return TrainingData(
        records=records,
        interactions=interactions,
        catalog=catalog,
        item_categories=categories,
        first_ms=records[0]["timestamp"] if records else None,
        last_ms=records[-1]["timestamp"] if records else None,
    )


def item_text(item: dict[str, Any]) -> str:
    """The words that describe a catalog item: title, category, brand, tags, text."""
    words = [str(item[name]) for name in TEXT_FIELDS if item.get(name)]
    words += [str(tag) for tag in item.get("tags") or ()]
    return " ".join(words)


_JSON_COLUMNS = ("context", "properties")
_DROPPED = frozenset({"position", "date"})


def archive_records(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Archived events back as log records (epoch ms, no empty fields), in table order."""
    for row in table.to_pylist():
        yield _record(row)


def _record(row: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or name in _DROPPED:
            continue
        if name in _JSON_COLUMNS:
            value = orjson.loads(value)
        elif isinstance(value, datetime):
            value = from_datetime(value)
        elif name == "items":
            value = [{k: v for k, v in line.items() if v is not None} for line in value]
        record[name] = value
    return record
