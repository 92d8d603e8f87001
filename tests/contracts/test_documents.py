"""Contract: versioned documents with compare-and-set and marks.

Writes run both ways: as after a read that found the current layout
(`DocWrite.current_layout`, Redis's leaner paths) and without knowing it."""

from __future__ import annotations

import pytest

from relevo.store.base import DocRead, DocWrite, Store

NOW = 1_767_225_600_000
HORIZON = 3_600_000


@pytest.fixture(params=[False, True], ids=["layout-unknown", "current-layout"])
def current(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def write(
    version: int,
    value: bytes,
    marks: list[bytes],
    now: int = NOW,
    ttl: int | None = None,
    *,
    current: bool,
    key: str = "{d}",
) -> DocWrite:
    return DocWrite(
        key=key, marks_key=key + ":marks", expected_version=version, value=value, now_ms=now,
        marks=marks, ttl_ms=ttl, marks_horizon_ms=HORIZON, current_layout=current,
    )  # fmt: skip


async def test_missing_document_has_version_zero(store: Store) -> None:
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"m1"])])
    assert (doc.version, doc.value, doc.marked) == (0, None, [False])


async def test_write_then_read_with_marks(store: Store, current: bool) -> None:
    assert await store.docs_write([write(0, b"v1", [b"m1", b"m2"], current=current)]) == [True]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"m2", b"m3", b"m1"])])
    assert (doc.version, doc.value, doc.marked) == (1, b"v1", [True, False, True])


async def test_stale_version_is_refused_and_changes_nothing(store: Store, current: bool) -> None:
    await store.docs_write([write(0, b"v1", [b"m1"], current=current)])
    assert await store.docs_write([write(0, b"other", [b"m9"], current=current)]) == [False]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"m9"])])
    assert (doc.version, doc.value, doc.marked) == (1, b"v1", [False])
    assert await store.docs_write([write(1, b"v2", [], current=current)]) == [True]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks")])
    assert (doc.version, doc.value) == (2, b"v2")


async def test_batch_writes_are_judged_one_by_one(store: Store, current: bool) -> None:
    other = DocWrite(key="{e}", marks_key="{e}:marks", expected_version=0, value=b"e1", now_ms=NOW)
    results = await store.docs_write([write(5, b"bad", [], current=current), other])
    assert results == [False, True]
    docs = await store.docs_read([DocRead("{d}", "{d}:marks"), DocRead("{e}", "{e}:marks")])
    assert [(d.version, d.value) for d in docs] == [(0, None), (1, b"e1")]


async def test_marks_are_forgotten_after_the_horizon(store: Store, current: bool) -> None:
    await store.docs_write([write(0, b"v1", [b"old"], now=NOW, current=current)])
    await store.docs_write([write(1, b"v2", [b"new"], now=NOW + HORIZON + 1, current=current)])
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"old", b"new"])])
    assert doc.marked == [False, True]


async def test_document_ttl_is_set_on_write(store: Store, current: bool) -> None:
    await store.docs_write([write(0, b"v1", [], ttl=60_000, current=current)])
    left = await store.ttl_ms("{d}")
    assert left is not None
    assert 0 < left <= 60_000


async def test_first_writes_race_one_wins_and_the_other_applies_only_what_is_new(
    store: Store, current: bool
) -> None:
    """Two writers read the document missing; both applied event e1, the second e2 too.
    One first write wins; the other conflicts, reads again and adds e2 alone."""
    (seen,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"e1", b"e2"])])
    assert (seen.version, seen.marked) == (0, [False, False])
    first = write(0, b"count=1", [b"e1"], current=current)
    second = write(0, b"count=2", [b"e1", b"e2"], current=current)
    assert await store.docs_write([first]) == [True]
    assert await store.docs_write([second]) == [False]
    (again,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"e1", b"e2"])])
    assert (again.version, again.value, again.marked) == (1, b"count=1", [True, False])
    retry = write(1, b"count=2", [b"e2"], now=NOW + 1, current=again.current_layout or current)
    assert await store.docs_write([retry]) == [True]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"e1", b"e2"])])
    assert (doc.version, doc.value, doc.marked) == (2, b"count=2", [True, True])


async def test_first_writes_of_one_batch_race_too(store: Store, current: bool) -> None:
    both = [write(0, b"a", [b"a"], current=current), write(0, b"b", [b"b"], current=current)]
    assert sorted(await store.docs_write(both)) == [False, True]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"a", b"b"])])
    assert doc.version == 1
    assert (doc.value, doc.marked) in [(b"a", [True, False]), (b"b", [False, True])]


async def test_a_large_batch_is_judged_in_order(store: Store, current: bool) -> None:
    """More documents than one Redis script updates, on many slots, some refused."""
    names = [f"{{d{number}}}" for number in range(120)]
    created = await store.docs_write(
        [write(0, b"v1", [name.encode()], key=name, current=current) for name in names]
    )
    assert created == [True] * 120
    updates = [
        write(1 if number % 7 else 3, b"v2", [b"m2"], now=NOW + 1, key=name, current=current)
        for number, name in enumerate(names)
    ]
    assert await store.docs_write(updates) == [bool(number % 7) for number in range(120)]
    docs = await store.docs_read([DocRead(name, name + ":marks", [b"m2"]) for name in names])
    assert [(doc.version, doc.value, doc.marked) for doc in docs] == [
        (2, b"v2", [True]) if number % 7 else (1, b"v1", [False]) for number in range(120)
    ]
