"""Contract: a sweep forgets the marks recorded before a cutoff, and nothing else."""

from __future__ import annotations

import pytest

from relevo.store import keys
from relevo.store.base import DocRead, DocWrite, MarksSweep, Store

NOW = 1_767_225_600_000
HORIZON = 3_600_000
DAY = 86_400_000


def write(
    user: str, version: int, value: bytes, marks: list[bytes], now: int = NOW, current: bool = False
) -> DocWrite:
    return DocWrite(
        keys.profile_key(user), keys.profile_marks_key(user), version, value, now_ms=now,
        marks=marks, ttl_ms=90 * DAY, marks_horizon_ms=HORIZON, current_layout=current,
    )  # fmt: skip


def read(user: str, marks: list[bytes]) -> DocRead:
    return DocRead(keys.profile_key(user), keys.profile_marks_key(user), marks)


async def sweep_pass(
    store: Store, before_ms: int, count: int = 1000, match: str = keys.PROFILE_DOCUMENTS
) -> MarksSweep:
    """A whole pass, its rounds' totals summed."""
    cursor, documents, swept, freed = "0", 0, 0, 0
    for _ in range(10_000):
        found = await store.sweep_marks(match, cursor, before_ms, count)
        documents, swept = documents + found.documents, swept + found.swept
        freed += found.freed_bytes
        cursor = found.cursor
        if cursor == "0":
            return MarksSweep(cursor, documents, swept, freed)
    raise AssertionError("the pass never ended")


async def test_marks_before_the_cutoff_go_and_the_document_stays(store: Store) -> None:
    await store.docs_write([write("a", 0, b"v1", [b"old-1", b"old-2"], now=NOW)])
    await store.docs_write([write("a", 1, b"v2", [b"young"], now=NOW + 30 * 60_000)])
    ttl = await store.ttl_ms(keys.profile_key("a"))
    done = await sweep_pass(store, before_ms=NOW + 1000)
    assert (done.documents, done.swept) == (1, 1)
    assert done.freed_bytes >= 10  # the marks (and on Redis the 7 bytes of their record)
    (doc,) = await store.docs_read([read("a", [b"old-1", b"old-2", b"young"])])
    assert (doc.version, doc.value, doc.marked) == (2, b"v2", [False, False, True])
    left = await store.ttl_ms(keys.profile_key("a"))
    assert ttl is not None
    assert left is not None
    assert ttl - 5_000 <= left <= ttl  # kept (Redis counts it down meanwhile)


async def test_marks_at_or_after_the_cutoff_stay(store: Store) -> None:
    await store.docs_write([write("a", 0, b"v1", [b"m1"], now=NOW)])
    await store.docs_write([write("b", 0, b"v1", [b"m2"], now=NOW + 1000)])
    done = await sweep_pass(store, before_ms=NOW)
    assert (done.documents, done.swept, done.freed_bytes) == (2, 0, 0)
    docs = await store.docs_read([read("a", [b"m1"]), read("b", [b"m2"])])
    assert [doc.marked for doc in docs] == [[True], [True]]


async def test_an_idle_document_loses_every_mark_and_takes_new_ones(store: Store) -> None:
    await store.docs_write([write("a", 0, b"v1", [b"m1", b"m2"], now=NOW)])
    done = await sweep_pass(store, before_ms=NOW + HORIZON)
    assert done.swept == 1
    assert done.freed_bytes >= 4
    (doc,) = await store.docs_read([read("a", [b"m1", b"m2"])])
    assert (doc.version, doc.value, doc.marked) == (1, b"v1", [False, False])
    assert await store.docs_write([write("a", 1, b"v2", [b"m3"], now=NOW + HORIZON)]) == [True]
    (doc,) = await store.docs_read([read("a", [b"m1", b"m3"])])
    assert (doc.version, doc.value, doc.marked) == (2, b"v2", [False, True])


async def test_documents_that_do_not_match_are_left_alone(store: Store) -> None:
    await store.docs_write([write("a", 0, b"v1", [b"m1"], now=NOW)])
    other = DocWrite("{x}:doc", "{x}:marks", 0, b"x", now_ms=NOW, marks=[b"m1"])
    await store.docs_write([other])
    await store.set_many({"{u:b}:profile-like": b"\x02" * 20})
    await sweep_pass(store, before_ms=NOW + DAY)
    (doc,) = await store.docs_read([DocRead("{x}:doc", "{x}:marks", [b"m1"])])
    assert doc.marked == [True]
    assert await store.get("{u:b}:profile-like") == b"\x02" * 20


async def test_a_pass_in_small_rounds_sweeps_every_document_once(store: Store) -> None:
    users = [f"user-{number}" for number in range(40)]
    await store.docs_write([write(user, 0, b"v", [user.encode()], now=NOW) for user in users])
    done = await sweep_pass(store, before_ms=NOW + DAY, count=7)
    assert done.documents >= 40  # SCAN may return a key twice; it is swept once
    assert done.swept == 40
    docs = await store.docs_read([read(user, [user.encode()]) for user in users])
    assert all(doc.marked == [False] and doc.version == 1 for doc in docs)
    again = await sweep_pass(store, before_ms=NOW + DAY)
    assert (again.swept, again.freed_bytes) == (0, 0)


@pytest.mark.parametrize("as_read", [False, True], ids=["layout-unknown", "layout-as-read"])
async def test_a_write_planned_before_a_sweep_still_lands_after_it(
    store: Store, as_read: bool
) -> None:
    """The sweep keeps the version: a writer that read before it writes without a
    conflict, the swept marks do not come back, its own are added, the young stay
    (whichever way the write goes: `DocWrite.current_layout`)."""
    await store.docs_write([write("a", 0, b"v1", [b"old"], now=NOW)])
    await store.docs_write([write("a", 1, b"v2", [b"young"], now=NOW + HORIZON // 2)])
    (planned,) = await store.docs_read([read("a", [b"old"])])
    assert (planned.version, planned.marked) == (2, [True])
    await sweep_pass(store, before_ms=NOW + 1000)
    current = as_read and planned.current_layout
    late = write("a", planned.version, b"v3", [b"new"], NOW + HORIZON // 2 + 1000, current)
    assert await store.docs_write([late]) == [True]
    (doc,) = await store.docs_read([read("a", [b"old", b"young", b"new"])])
    assert (doc.version, doc.value, doc.marked) == (3, b"v3", [False, True, True])
