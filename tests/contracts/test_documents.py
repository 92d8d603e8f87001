"""Contract: versioned documents with compare-and-set and marks."""

from __future__ import annotations

from relevo.store.base import DocRead, DocWrite, Store

NOW = 1_767_225_600_000
HORIZON = 3_600_000


def write(
    version: int, value: bytes, marks: list[bytes], now: int = NOW, ttl: int | None = None
) -> DocWrite:
    return DocWrite(
        key="{d}", marks_key="{d}:marks", expected_version=version, value=value, now_ms=now,
        marks=marks, ttl_ms=ttl, marks_horizon_ms=HORIZON,
    )  # fmt: skip


async def test_missing_document_has_version_zero(store: Store) -> None:
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"m1"])])
    assert (doc.version, doc.value, doc.marked) == (0, None, [False])


async def test_write_then_read_with_marks(store: Store) -> None:
    assert await store.docs_write([write(0, b"v1", [b"m1", b"m2"])]) == [True]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"m2", b"m3", b"m1"])])
    assert (doc.version, doc.value, doc.marked) == (1, b"v1", [True, False, True])


async def test_stale_version_is_refused_and_changes_nothing(store: Store) -> None:
    await store.docs_write([write(0, b"v1", [b"m1"])])
    assert await store.docs_write([write(0, b"other", [b"m9"])]) == [False]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"m9"])])
    assert (doc.version, doc.value, doc.marked) == (1, b"v1", [False])
    assert await store.docs_write([write(1, b"v2", [])]) == [True]
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks")])
    assert (doc.version, doc.value) == (2, b"v2")


async def test_batch_writes_are_judged_one_by_one(store: Store) -> None:
    other = DocWrite(key="{e}", marks_key="{e}:marks", expected_version=0, value=b"e1", now_ms=NOW)
    results = await store.docs_write([write(5, b"bad", []), other])
    assert results == [False, True]
    docs = await store.docs_read([DocRead("{d}", "{d}:marks"), DocRead("{e}", "{e}:marks")])
    assert [(d.version, d.value) for d in docs] == [(0, None), (1, b"e1")]


async def test_marks_are_forgotten_after_the_horizon(store: Store) -> None:
    await store.docs_write([write(0, b"v1", [b"old"], now=NOW)])
    await store.docs_write([write(1, b"v2", [b"new"], now=NOW + HORIZON + 1)])
    (doc,) = await store.docs_read([DocRead("{d}", "{d}:marks", [b"old", b"new"])])
    assert doc.marked == [False, True]


async def test_document_ttl_is_set_on_write(store: Store) -> None:
    await store.docs_write([write(0, b"v1", [], ttl=60_000)])
    left = await store.ttl_ms("{d}")
    assert left is not None
    assert 0 < left <= 60_000
