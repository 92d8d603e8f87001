"""The Parquet archive writer writes what the row-based writer before it wrote.

The records cover every field of an event and an item upsert, present, missing and
null; line items with and without price and category; free-form JSON with unicode;
several days interleaved (and the last and first millisecond of a day); records that
are not archived. Files are compared byte for byte, then as the readers see them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pyarrow.parquet as pq
import pytest

from relevo.eventlog import archive
from relevo.eventlog.archive import ArchiveWriter, read_events, read_items
from relevo.eventlog.base import LogRecord
from tests.support.archive_reference import row_write

DAY = 86_400_000
T0 = 1_796_428_800_000  # 2026-12-05T00:00:00Z


def event(rng: random.Random, number: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": f"e-{number}-é",
        "type": rng.choice(["view", "click", "add_to_cart", "purchase", "search", "déjà_vu"]),
        "timestamp": T0 + rng.choice([-1, 0, 1, DAY - 1, DAY, 2 * DAY + number, -3 * DAY + number]),
    }
    if rng.random() < 0.8:
        record["user_id"] = rng.choice(["u1", "ü2", "用户3", "u-4"])
    if rng.random() < 0.5:
        record["anonymous_id"] = f"anon{rng.randrange(5)}"
    if rng.random() < 0.5:
        record["session_id"] = None if rng.random() < 0.2 else f"s{rng.randrange(5)}"
    if rng.random() < 0.5:
        record["item_id"] = rng.choice(["i1", "ítem-2", "i3"])
    if rng.random() < 0.4:
        record["category"] = rng.choice(["shoes", "chaussures/été", "🎒"])
    if rng.random() < 0.3:
        record["items"] = [line(rng) for _ in range(rng.randrange(4))]
    if rng.random() < 0.4:
        record["value"] = rng.choice([0, 3, 12.5, 1e9, -0.0])
    if rng.random() < 0.3:
        record["decision_id"] = f"d{rng.randrange(100)}"
    if rng.random() < 0.7:
        record["context"] = rng.choice(
            [{}, {"device": "mobile", "country": "FR"}, {"page": "/été", "nested": {"a": [1, 2.5]}}]
        )
    if rng.random() < 0.4:
        record["properties"] = rng.choice(
            [{"query": "chaussures de randonnée ☀"}, {"n": 1, "ok": True, "none": None}, {}]
        )
    if rng.random() < 0.1:
        record["extra"] = "a field the archive has no column for"
    return record


def line(rng: random.Random) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "item_id": rng.choice(["i1", "ítem-2"]),
        "quantity": rng.randrange(1, 4),
    }
    if rng.random() < 0.5:
        entry["price"] = rng.choice([9.99, 10, 0.0])
    if rng.random() < 0.5:
        entry["category"] = rng.choice(["shoes", "sacs"])
    return entry


def item(rng: random.Random, number: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "item_id": f"item-{number % 7}",
        "updated_at": T0 + rng.choice([-1, 0, DAY + 7]),
    }
    if rng.random() < 0.7:
        record["category"] = rng.choice(["shoes", "vêtements"])
    if rng.random() < 0.7:
        record["price"] = rng.choice([5, 19.9])
    if rng.random() < 0.7:
        record["in_stock"] = rng.random() < 0.5
    if rng.random() < 0.5:
        record["attributes"] = {"colour": "bleu ciel", "sizes": [38, 39]}
    return record


def varied_records(count: int = 600, seed: int = 7) -> list[LogRecord]:
    rng = random.Random(seed)
    records = []
    for number in range(count):
        position = f"{number % 16}/{T0 + number}-{number % 3}"
        kind = rng.choices(["event", "item", "timer", "config"], weights=[80, 12, 4, 4])[0]
        if kind == "event":
            body = event(rng, number)
        elif kind == "item":
            body = item(rng, number)
        else:
            body = {"anything": number}
        records.append(LogRecord(kind, "key", orjson.dumps(body), position))
    return records


def by_partition(root: Path, written: list[Path]) -> dict[tuple[str, str], Path]:
    """Written files by folder and name without their random suffix."""
    assert all(path.exists() and not path.name.startswith(".") for path in written)
    assert sorted(written) == sorted(root.glob("*/*/*.parquet"))
    return {
        (str(path.parent.relative_to(root)), path.name.rsplit("-", 1)[0]): path for path in written
    }


@pytest.mark.parametrize("chunk", [archive._CHUNK, 64, 7])
def test_the_writer_writes_what_the_row_based_writer_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Also when a batch is built in chunks (of a size that splits days and kinds)."""
    monkeypatch.setattr(archive, "_CHUNK", chunk)
    records = varied_records()
    columnar, rows = tmp_path / "columnar", tmp_path / "rows"
    written = ArchiveWriter(columnar).write(records)
    expected = row_write(rows, records)
    ours, theirs = by_partition(columnar, written), by_partition(rows, expected)
    assert list(ours) == list(theirs)  # the same files, in the same order
    assert {folder for folder, _ in ours} == {
        f"{kind}/date={day}"
        for kind in ("events", "items")
        for day in ("2026-12-02", "2026-12-04", "2026-12-05", "2026-12-06", "2026-12-07")
    } - {"items/date=2026-12-02", "items/date=2026-12-07"}
    for key, path in ours.items():
        assert path.read_bytes() == theirs[key].read_bytes(), key
        assert pq.read_table(path).equals(pq.read_table(theirs[key]))
    assert read_events(columnar).equals(read_events(rows))
    assert read_items(columnar) == read_items(rows)


def test_one_day_one_kind_and_nothing_to_archive(tmp_path: Path) -> None:
    one_day = [
        msgspec.structs.replace(r, body=orjson.dumps({**orjson.loads(r.body), "timestamp": T0 + 5}))
        for r in varied_records(200, seed=3)
        if r.kind == "event"
    ]
    [path] = ArchiveWriter(tmp_path / "a").write(one_day)
    [reference] = row_write(tmp_path / "b", one_day)
    assert path.read_bytes() == reference.read_bytes()
    timers = [LogRecord("timer", "u", b"{}", "1"), LogRecord("config", "c", b"{}", "2")]
    assert ArchiveWriter(tmp_path / "c").write(timers) == []
    assert ArchiveWriter(tmp_path / "c").write([]) == []
    assert not (tmp_path / "c").exists()


def test_only_columns_that_repeat_are_dictionary_encoded(tmp_path: Path) -> None:
    """`archive.UNIQUE_COLUMNS` (an id, a time, a log position per row) are stored plain;
    the columns that repeat (types, users, categories) keep Parquet's dictionaries."""
    written = ArchiveWriter(tmp_path).write(varied_records(300, seed=5))
    repeating = {"events": ["type", "user_id"], "items": ["category", "item_id"]}
    for path in written:
        metadata = pq.ParquetFile(path).metadata
        group = metadata.row_group(0)
        encoded = {
            group.column(i).path_in_schema: group.column(i).dictionary_page_offset is not None
            for i in range(metadata.num_columns)
        }
        for name in archive.UNIQUE_COLUMNS & encoded.keys():
            assert not encoded[name], (path, name)
        for name in repeating[path.parent.parent.name]:
            assert encoded[name], (path, name)
