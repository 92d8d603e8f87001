"""Reading interactions from every supported source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from relevo.models.interactions import (
    Interactions,
    InteractionsError,
    load_interactions,
    parse_timestamp_ms,
)


def test_movielens_reads_every_rating_as_an_interaction(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t1\t891717742\n")
    data = load_interactions(tmp_path / "u.data")
    assert (data.n_users, data.n_items, len(data)) == (2, 2, 2)
    assert data.user_ids.tolist() == ["196", "186"]
    assert data.timestamps.tolist() == [881250949000, 891717742000]
    assert data.weights.tolist() == [1.0, 1.0]
    assert data.item_text is None


def test_movielens_reads_titles_and_genres_beside_the_ratings(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t5\t10\n")
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\nSci-Fi|2\n\n")
    (tmp_path / "u.item").write_bytes(b"2|Caf\xe9 (1995)|01-Jan-1995||url|0|1|1\n")
    data = Interactions.from_movielens(tmp_path / "u.data")
    assert data.item_text == ("Café (1995) genre_Action genre_Sci-Fi",)


def test_movielens_bad_file_raises_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t3\n")
    with pytest.raises(InteractionsError):
        Interactions.from_movielens(tmp_path / "u.data")


def test_jsonl_accepts_iso_with_zone_and_epoch_ms(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"type": "view", "user_id": "u1", "item_id": "a", "timestamp": "2024-01-01T00:00:00Z"}\n'
        "\n"
        '{"type": "purchase", "user_id": "u1", "item_id": "b", '
        '"timestamp": "2024-01-01T01:00:00+01:00"}\n'
        '{"type": "search", "user_id": "u2", "timestamp": 5}\n'
        '{"type": "add_to_cart", "user_id": "u2", "item_id": "a", "timestamp": 1704067200001}\n'
    )
    data = load_interactions(path)
    assert len(data) == 3  # the search has no item and is dropped
    assert data.timestamps.tolist() == [1704067200000, 1704067200000, 1704067200001]
    types = [data.type_names[t] for t in data.types]
    assert types == ["view", "purchase", "add_to_cart"]
    assert data.weights.tolist() == [1.0, 8.0, 4.0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "events.jsonl:1: not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"user_id": "u", "item_id": "a", "timestamp": "2024-01-01T00:00:00"}', "no time zone"),
        ('{"user_id": "u", "item_id": "a"}', "missing or invalid 'timestamp'"),
        ('{"item_id": "a", "timestamp": 1}', "missing 'user_id'"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InteractionsError, match=message):
        Interactions.from_jsonl(path)


def test_arrow_table_with_utc_timestamps_matches_the_archive_schema() -> None:
    table = pa.table(
        {
            "user_id": ["u1", "u2", "u1"],
            "item_id": ["a", None, "b"],
            "type": ["view", "view", "click"],
            "timestamp": pa.array(
                [
                    datetime(2024, 1, 1, tzinfo=UTC),
                    datetime(2024, 1, 2, tzinfo=UTC),
                    datetime(2024, 1, 3, tzinfo=UTC),
                ],
                type=pa.timestamp("ms", tz="UTC"),
            ),
        }
    )
    data = Interactions.from_records(table)
    assert len(data) == 2
    assert data.user_ids.tolist() == ["u1"]
    assert data.timestamps.tolist() == [1704067200000, 1704240000000]
    assert data.weights.tolist() == [1.0, 2.0]


def test_arrow_naive_timestamps_are_refused() -> None:
    table = pa.table(
        {
            "user_id": ["u"],
            "item_id": ["a"],
            "timestamp": pa.array([datetime(2024, 1, 1)], type=pa.timestamp("ms")),
        }
    )
    with pytest.raises(InteractionsError, match="no time zone"):
        Interactions.from_records(table)


def test_parquet_archive_is_read_by_suffix(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "user_id": ["u"],
            "item_id": ["a"],
            "type": ["view"],
            "timestamp": pa.array([0], type=pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    assert len(load_interactions(tmp_path / "events.parquet")) == 1


def test_csr_sums_repeated_interactions_and_binary_flattens_them() -> None:
    data = Interactions.from_records(
        [
            {"user_id": "u", "item_id": "a", "type": "view", "timestamp": 1},
            {"user_id": "u", "item_id": "a", "type": "click", "timestamp": 2},
            {"user_id": "u", "item_id": "b", "type": "impression", "timestamp": 3},
        ]
    )
    assert data.to_csr().toarray().tolist() == [[3.0, 0.0]]
    assert data.to_csr(binary=True).toarray().tolist() == [[1.0, 0.0]]


def test_subset_keeps_the_index_space() -> None:
    data = Interactions.from_records(
        [{"user_id": u, "item_id": i, "timestamp": 0} for u, i in [("a", "x"), ("b", "y")]]
    )
    part = data.subset(np.array([False, True]))
    assert part.shape == data.shape
    assert part.user_index("b") == 1
    assert part.item_index("nope") is None


def test_time_order_keeps_input_order_for_ties() -> None:
    data = Interactions.from_records(
        [{"user_id": "u", "item_id": str(i), "timestamp": t} for i, t in enumerate([5, 1, 5, 1])]
    )
    assert data.time_order().tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000_123, 1_700_000_000_123),
        (12.9, 12),
        ("1970-01-01T00:00:01+00:00", 1000),
        ("1970-01-01T01:00:00+01:00", 0),
        (datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC), 2000),
    ],
)
def test_parse_timestamp_ms(value: object, expected: int) -> None:
    assert parse_timestamp_ms(value) == expected


@pytest.mark.parametrize("value", [True, None, "yesterday", float("nan")])
def test_parse_timestamp_ms_rejects(value: object) -> None:
    with pytest.raises(InteractionsError):
        parse_timestamp_ms(value)
