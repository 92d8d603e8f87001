"""Contract: streams of uniquely identified messages, read from a cursor."""

from __future__ import annotations

import pytest

from relevo.errors import InvalidInput
from relevo.store.base import Store

NOW = 1_767_225_600_000
HOUR = 3_600_000


async def test_append_and_read_from_a_cursor(store: Store) -> None:
    positions = await store.stream_add("{s}", [("a", b"1"), ("b", b"2")], NOW, HOUR, 100)
    assert all(positions)
    first = await store.stream_read("{s}", None, 10)
    assert [(e.id, e.body) for e in first] == [("a", b"1"), ("b", b"2")]
    assert [e.position for e in first] == positions
    await store.stream_add("{s}", [("c", b"3")], NOW, HOUR, 100)
    after = await store.stream_read("{s}", first[-1].position, 10)
    assert [e.id for e in after] == ["c"]
    assert await store.stream_read("{s}", after[-1].position, 10) == []
    assert [e.id for e in await store.stream_read("{s}", None, 2)] == ["a", "b"]


async def test_a_message_id_is_stored_once(store: Store) -> None:
    await store.stream_add("{s}", [("a", b"1")], NOW, HOUR, 100)
    positions = await store.stream_add(
        "{s}", [("a", b"again"), ("b", b"2"), ("b", b"3")], NOW, HOUR, 100
    )
    assert positions[0] is None
    assert positions[1] is not None
    assert positions[2] is None
    assert [(e.id, e.body) for e in await store.stream_read("{s}", None, 10)] == [
        ("a", b"1"),
        ("b", b"2"),
    ]


async def test_ids_are_forgotten_after_the_dedupe_window(store: Store) -> None:
    await store.stream_add("{s}", [("a", b"1")], NOW, HOUR, 100)
    positions = await store.stream_add("{s}", [("a", b"2")], NOW + HOUR + 1, HOUR, 100)
    assert positions[0] is not None


async def test_stream_keeps_about_the_newest_messages(store: Store) -> None:
    for n in range(300):
        await store.stream_add("{s}", [(f"m{n}", b"x")], NOW, HOUR, 100)
    kept = await store.stream_read("{s}", None, 1000)
    assert 100 <= len(kept) < 300
    assert kept[-1].id == "m299"


async def test_reading_a_missing_stream_is_empty(store: Store) -> None:
    assert await store.stream_read("nothing", None, 10) == []


async def test_a_cursor_that_is_not_one_is_refused(store: Store) -> None:
    await store.stream_add("{s}", [("a", b"1")], NOW, HOUR, 100)
    with pytest.raises(InvalidInput) as refused:
        await store.stream_read("{s}", "not-a-cursor", 10)
    assert refused.value.field == "after"
