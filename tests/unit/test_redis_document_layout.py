"""Redis documents: the compact layout (one string holding the document and its marks),
and documents written by earlier versions (a format-1 string or a hash, their marks
under their own key as a string or a sorted set), read and converted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relevo.features.profile import ProfileState, RecentItem, decode, encode
from relevo.store import keys
from relevo.store.base import DocRead, DocWrite
from relevo.store.redis import RedisStore, parse_document
from tests.conftest import unique_prefix
from tests.support.servers import RedisServer

NOW = 1_767_225_600_000
HORIZON = 3_600_000
ALL = 10**9
"""A sweep round that walks the whole key space (other tests' keys share the server)."""


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url, prefix=unique_prefix())
    yield store
    await store.close()


def write(version: int, value: bytes, marks: list[bytes], now: int = NOW) -> DocWrite:
    return DocWrite(
        "{u:a}:profile", "{u:a}:applied", version, value, now_ms=now, marks=marks,
        ttl_ms=60_000, marks_horizon_ms=HORIZON,
    )  # fmt: skip


def header(version: int, marks: bytes) -> bytes:
    return b"\x02" + version.to_bytes(4, "big") + len(marks).to_bytes(4, "big") + marks


async def test_a_document_and_its_marks_are_one_string(store: RedisStore) -> None:
    assert await store.docs_write([write(0, b"doc", [b"m1", b"m2"])]) == [True]
    client = store.client
    assert await client.type(store.k("{u:a}:profile")) == b"string"
    assert await client.exists(store.k("{u:a}:applied")) == 0
    second = (NOW // 1000).to_bytes(4, "big")
    marks = b"\x00\x02\x02" + second + b"m1m2"  # one group per write and mark length
    assert await client.get(store.k("{u:a}:profile")) == header(1, marks) + b"doc"
    assert 0 < await client.pttl(store.k("{u:a}:profile")) <= 60_000


async def test_marks_of_one_write_share_a_record_and_stale_ones_leave(store: RedisStore) -> None:
    """One record per write (and mark length): 7 bytes, then 8 per 8-byte mark. Records of
    the earlier layout (one per mark, under the marks key) are folded in, and pruned alike."""
    client = store.client
    old_second = ((NOW - HORIZON - 5000) // 1000).to_bytes(4, "big")
    recent_second = ((NOW - 1000) // 1000).to_bytes(4, "big")
    await client.set(
        store.k("{u:a}:applied"), b"\x03old" + old_second + b"\x04kept" + recent_second
    )
    many = [number.to_bytes(8, "big") for number in range(300)]
    assert await store.docs_write([write(0, b"doc", [*many, b"odd"])]) == [True]
    assert await client.exists(store.k("{u:a}:applied")) == 0
    second = (NOW // 1000).to_bytes(4, "big")
    marks = (
        b"\x04kept" + recent_second  # the stale earlier record is gone, the other kept
        + b"\x00\xff\x08" + second + b"".join(many[:255])
        + b"\x00\x2d\x08" + second + b"".join(many[255:])
        + b"\x00\x01\x03" + second + b"odd"
    )  # fmt: skip
    assert await client.get(store.k("{u:a}:profile")) == header(1, marks) + b"doc"
    asked = [b"old", b"kept", many[0], many[299], b"odd", b"new"]
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", asked)])
    assert doc.marked == [False, True, True, True, True, False]
    assert doc.value == b"doc"
    later = NOW + HORIZON + 1000  # every mark above is stale by then
    assert await store.docs_write([write(1, b"doc2", [b"new"], now=later)]) == [True]
    fresh = b"\x00\x01\x03" + (later // 1000).to_bytes(4, "big") + b"new"
    assert await client.get(store.k("{u:a}:profile")) == header(2, fresh) + b"doc2"


async def test_a_write_without_marks_keeps_the_marks(store: RedisStore) -> None:
    await store.docs_write([write(0, b"a", [b"m1"])])
    await store.docs_write([write(1, b"b", [], now=NOW + 1000)])
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", [b"m1"])])
    assert (doc.version, doc.value, doc.marked) == (2, b"b", [True])


async def test_a_format_1_document_with_its_marks_string_is_read_and_converted(
    store: RedisStore,
) -> None:
    client = store.client
    second = ((NOW - 1000) // 1000).to_bytes(4, "big")
    await client.set(store.k("{u:a}:profile"), b"\x01" + (4).to_bytes(4, "big") + b"old doc")
    await client.set(
        store.k("{u:a}:applied"), b"\x02m1" + second + b"\x00\x01\x02" + second + b"m2"
    )
    asked = [b"m1", b"m2", b"m3"]
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", asked)])
    assert (doc.version, doc.value, doc.marked) == (4, b"old doc", [True, True, False])
    assert await store.docs_write([write(4, b"new doc", [b"m3"])]) == [True]
    assert await client.exists(store.k("{u:a}:applied")) == 0
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", asked)])
    assert (doc.version, doc.value, doc.marked) == (5, b"new doc", [True, True, True])
    assert parse_document(await client.get(store.k("{u:a}:profile")))[1] == b"new doc"


async def test_documents_of_the_earlier_layout_are_read_and_converted(store: RedisStore) -> None:
    client = store.client
    old = ProfileState(user_id="a", recent_items=[RecentItem("sku", 1)])
    plain = encode(old) if len(encode(old)) < 96 else b""
    assert plain  # a small profile is plain MessagePack, as every profile once was
    await client.hset(store.k("{u:a}:profile"), mapping={"v": 7, "d": plain})
    await client.zadd(store.k("{u:a}:applied"), {b"old": NOW - 1000, b"stale": NOW - HORIZON - 1})
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", [b"old", b"x"])])
    assert (doc.version, doc.marked) == (7, [True, False])
    assert doc.value is not None
    assert decode(doc.value) == old
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied")])
    assert doc.version == 7
    assert await store.docs_write([write(6, b"late", [b"new"])]) == [False]
    assert await store.docs_write([write(7, b"next", [b"new"])]) == [True]
    assert await client.type(store.k("{u:a}:profile")) == b"string"
    assert await client.exists(store.k("{u:a}:applied")) == 0  # folded into the document
    marks = [b"old", b"stale", b"new"]
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", marks)])
    assert (doc.version, doc.value, doc.marked) == (8, b"next", [True, False, True])


async def test_old_marks_with_a_new_document(store: RedisStore) -> None:
    await store.docs_write([write(0, b"doc", [])])
    await store.client.zadd(store.k("{u:a}:applied"), {b"old": NOW})
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", [b"old", b"x"])])
    assert (doc.version, doc.value, doc.marked) == (1, b"doc", [True, False])


async def test_earlier_marks_of_one_user_among_many_are_read(store: RedisStore) -> None:
    """A read of many users asks whether any has a marks key of an earlier layout (one
    ``EXISTS``); when one has, its marks still count, whatever kind of key holds them, and
    the others read as they would alone."""
    client = store.client
    await store.docs_write([write(0, b"doc", [b"m"])])  # user a: the current layout
    await client.zadd(store.k("{u:b}:applied"), {b"m": NOW})  # b: no document, old marks
    await client.set(store.k("{u:c}:applied"), b"\x01m" + (NOW // 1000).to_bytes(4, "big"))
    reads = [DocRead(f"{{u:{u}}}:profile", f"{{u:{u}}}:applied", [b"m", b"x"]) for u in "abcd"]
    docs = await store.docs_read([*reads, DocRead("{u:a}:profile", "{u:a}:applied")])
    assert [doc.marked for doc in docs] == [[True, False]] * 3 + [[False, False], []]
    assert [doc.current_layout for doc in docs] == [True, False, False, True, False]
    await client.delete(store.k("{u:b}:applied"), store.k("{u:c}:applied"))
    docs = await store.docs_read(reads)
    assert [doc.marked for doc in docs] == [[True, False]] + [[False, False]] * 3
    assert [doc.current_layout for doc in docs] == [True] * 4


async def test_a_mark_longer_than_255_bytes_is_refused(store: RedisStore) -> None:
    from relevo.errors import InvalidInput

    with pytest.raises(InvalidInput):
        await store.docs_write([write(0, b"doc", [b"x" * 256])])


async def test_stale_marks_leave_from_the_head(store: RedisStore) -> None:
    await store.docs_write([write(0, b"a", [b"m1"], now=NOW)])
    await store.docs_write([write(1, b"b", [b"m2"], now=NOW + HORIZON // 2)])
    await store.docs_write([write(2, b"c", [b"m3"], now=NOW + HORIZON + 1)])
    marks = [b"m1", b"m2", b"m3"]
    (doc,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", marks)])
    assert doc.marked == [False, True, True]
    stored = await store.client.get(store.k("{u:a}:profile"))
    marks = stored[9:-1]
    assert marks.startswith(b"\x00\x01\x02")  # a record of one 2-byte mark: m2's
    assert marks[7:9] == b"m2"
    assert len(marks) == 2 * (7 + 2)


async def test_a_sweep_rewrites_format_2_documents_only(store: RedisStore) -> None:
    """Marks past the cutoff leave the string (record headers too); the version, the
    value and the expiry stay. Format-1 strings and hashes are left to their next write."""
    client = store.client
    format_1 = b"\x01" + (3).to_bytes(4, "big") + b"doc"
    await client.set(store.k("{u:b}:profile"), format_1)
    await client.hset(store.k("{u:c}:profile"), mapping={"v": b"2", "d": b"doc"})
    assert await store.docs_write([write(0, b"doc", [b"m1"])]) == [True]
    found = await store.sweep_marks(keys.PROFILE_DOCUMENTS, "0", NOW + 10 * HORIZON, ALL)
    assert (found.cursor, found.documents, found.swept, found.freed_bytes) == ("0", 1, 1, 9)
    assert await client.get(store.k("{u:a}:profile")) == header(1, b"") + b"doc"
    assert 0 < await client.pttl(store.k("{u:a}:profile")) <= 60_000
    assert await client.get(store.k("{u:b}:profile")) == format_1
    assert await client.hgetall(store.k("{u:c}:profile")) == {b"v": b"2", b"d": b"doc"}


async def test_a_sweep_keeps_a_record_of_a_second_not_wholly_before_the_cutoff(
    store: RedisStore,
) -> None:
    """A record keeps seconds: one written at 12:00:00.999 holds marks of up to .999, so a
    cutoff inside its second keeps it."""
    assert await store.docs_write([write(0, b"doc", [b"m1"], now=NOW + 999)]) == [True]
    found = await store.sweep_marks(keys.PROFILE_DOCUMENTS, "0", NOW + 999, ALL)
    assert found.swept == 0
    found = await store.sweep_marks(keys.PROFILE_DOCUMENTS, "0", NOW + 1000, ALL)
    assert found.swept == 1


def written_as_read(
    user: str, version: int, value: bytes, marks: list[bytes], now: int
) -> DocWrite:
    """A write that follows a read which found the current layout (`_DOC_UPDATE`, or SET
    NX for a first write)."""
    return DocWrite(
        keys.profile_key(user), keys.profile_marks_key(user), version, value, now_ms=now,
        marks=marks, ttl_ms=60_000, marks_horizon_ms=HORIZON, current_layout=True,
    )  # fmt: skip


async def test_the_lean_paths_store_the_bytes_the_full_script_stores(store: RedisStore) -> None:
    """The same writes, user a through `_DOC_CAS`, user b as read in the current layout:
    byte for byte the same documents, first write and updates (many marks of several
    lengths, a write without marks, stale records leaving, records of the earlier
    one-mark shape among them)."""
    client = store.client
    many = [number.to_bytes(8, "big") for number in range(300)]
    writes = [
        (0, b"first", [*many, b"odd", b"\x00" * 3], NOW),
        (1, b"second", [], NOW + 1500),
        (2, b"third", [b"m" * 255, b"12345678"], NOW + HORIZON // 2),
        (3, b"fourth", [b"late"], NOW + HORIZON + 2000),
    ]
    folded = b"\x04kept" + ((NOW + HORIZON) // 1000).to_bytes(4, "big")  # one-mark record
    for number, (version, value, marks, now) in enumerate(writes):
        full = DocWrite(
            keys.profile_key("a"), keys.profile_marks_key("a"), version, value, now_ms=now,
            marks=marks, ttl_ms=60_000, marks_horizon_ms=HORIZON,
        )  # fmt: skip
        lean = written_as_read("b", version, value, marks, now)
        assert await store.docs_write([full, lean]) == [True, True]
        a = await client.get(store.k(keys.profile_key("a")))
        b = await client.get(store.k(keys.profile_key("b")))
        assert a == b, number
        if number == 2:  # as if a record of the earlier shape had been folded in
            _, _, inside = parse_document(a)
            doc = header(3, inside + folded) + b"third"
            for user in "ab":
                await client.set(store.k(keys.profile_key(user)), doc, px=60_000)
    _, _, inside = parse_document(b)
    assert folded in inside  # young enough to stay
    assert many[0] not in inside  # the first write's records left
    assert 0 < await client.pttl(store.k(keys.profile_key("b"))) <= 60_000


async def test_a_first_write_of_one_mark_stores_the_full_scripts_bytes(store: RedisStore) -> None:
    """A new user's first event (the ``SET NX`` of one mark, its own shortcut) against
    `_DOC_CAS`."""
    full = DocWrite(
        keys.profile_key("a"), keys.profile_marks_key("a"), 0, b"doc", now_ms=NOW + 999,
        marks=[b"12345678"], ttl_ms=60_000, marks_horizon_ms=HORIZON,
    )  # fmt: skip
    lean = written_as_read("b", 0, b"doc", [b"12345678"], NOW + 999)
    assert await store.docs_write([full, lean]) == [True, True]
    stored = [await store.client.get(store.k(keys.profile_key(user))) for user in "ab"]
    assert stored[0] == stored[1]


async def test_a_read_says_whether_it_found_the_current_layout(store: RedisStore) -> None:
    client = store.client

    async def current(user: str, marks: list[bytes]) -> bool:
        read = DocRead(keys.profile_key(user), keys.profile_marks_key(user), marks)
        (doc,) = await store.docs_read([read])
        return doc.current_layout

    assert await current("a", [b"m"])  # nothing yet
    assert await store.docs_write([written_as_read("a", 0, b"doc", [b"m"], NOW)]) == [True]
    assert await current("a", [b"m"])
    assert not await current("a", [])  # the marks key of an earlier layout not looked at
    await client.set(store.k("{u:b}:profile"), b"\x01" + (3).to_bytes(4, "big") + b"doc")
    assert not await current("b", [b"m"])
    await client.hset(store.k("{u:c}:profile"), mapping={"v": b"2", "d": b"doc"})
    assert not await current("c", [b"m"])
    await client.set(store.k("{u:d}:applied"), b"\x01m" + (NOW // 1000).to_bytes(4, "big"))
    assert not await current("d", [b"m"])
    await client.zadd(store.k("{u:e}:applied"), {b"m": NOW})
    assert not await current("e", [b"m"])


async def test_an_earlier_layout_written_since_the_read_is_a_conflict(store: RedisStore) -> None:
    """A writer of an earlier version came between the read and the write: the lean
    write refuses (the applier reads again), and the write after that read converts."""
    client = store.client
    assert await store.docs_write([written_as_read("a", 0, b"doc", [b"m1"], NOW)]) == [True]
    (read,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", [b"m2"])])
    assert read.current_layout
    older = b"\x01" + (1).to_bytes(4, "big") + b"old writer"  # the same version, format 1
    await client.set(store.k("{u:a}:profile"), older)
    await client.set(store.k("{u:a}:applied"), b"\x02m2" + (NOW // 1000).to_bytes(4, "big"))
    assert await store.docs_write([written_as_read("a", 1, b"new", [b"m3"], NOW)]) == [False]
    assert await client.get(store.k("{u:a}:profile")) == older
    (again,) = await store.docs_read([DocRead("{u:a}:profile", "{u:a}:applied", [b"m2"])])
    assert (again.version, again.marked, again.current_layout) == (1, [True], False)
    assert await store.docs_write([write(1, b"new", [b"m3"])]) == [True]
    assert await client.exists(store.k("{u:a}:applied")) == 0
    await client.delete(store.k("{u:a}:profile"))
    await client.hset(store.k("{u:a}:profile"), mapping={"v": b"2", "d": b"doc"})
    assert await store.docs_write([written_as_read("a", 2, b"newer", [], NOW)]) == [False]
    assert await client.hgetall(store.k("{u:a}:profile")) == {b"v": b"2", b"d": b"doc"}


async def test_the_sweep_script_leaves_other_keys_alone(store: RedisStore) -> None:
    """Keys that changed since the SCAN: a hash, a key gone, a format-1 string."""
    client = store.client
    assert await store.docs_write([write(0, b"doc", [b"m1"])]) == [True]
    await client.hset(store.k("{u:b}:profile"), mapping={"v": b"2", "d": b"doc"})
    format_1 = b"\x01" + (3).to_bytes(4, "big") + b"doc"
    await client.set(store.k("{u:c}:profile"), format_1)
    names = [store.k(f"{{u:{user}}}:profile") for user in "abcd"]  # d: gone
    ((seen, swept, freed),) = await store.run_scripts(
        [(store.sweep_script, names, [NOW + 10 * HORIZON])]
    )
    assert (seen, swept, freed) == (1, 1, 9)
    assert await client.get(store.k("{u:a}:profile")) == header(1, b"") + b"doc"
    assert await client.hgetall(store.k("{u:b}:profile")) == {b"v": b"2", b"d": b"doc"}
    assert await client.get(store.k("{u:c}:profile")) == format_1
    assert await client.exists(store.k("{u:d}:profile")) == 0
