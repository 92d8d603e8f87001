"""Contract: bounded lists, maps and sorted sets."""

from __future__ import annotations

import pytest

from relevo.store.base import Store


async def test_list_is_newest_first_and_bounded(store: Store) -> None:
    await store.list_push("l", [b"1", b"2"], max_len=3)
    await store.list_push("l", [b"3", b"4"], max_len=3)
    assert await store.list_range("l") == [b"4", b"3", b"2"]
    assert await store.list_range("l", 0, 0) == [b"4"]
    assert await store.list_range("l", 1, 2) == [b"3", b"2"]
    assert await store.list_range("missing") == []


async def test_map_fields_set_get_increment_delete(store: Store) -> None:
    await store.map_set("m", {"a": b"x", "b": b"y"})
    assert await store.map_get("m", ["b", "zz", "a"]) == [b"y", None, b"x"]
    await store.map_incr("m", {"n": 2})
    await store.map_incr("m", {"n": 3, "k": 1})
    assert await store.map_all("m") == {"a": b"x", "b": b"y", "n": b"5", "k": b"1"}
    assert await store.map_delete("m", ["a", "zz"]) == 1
    assert await store.map_get("m", ["a"]) == [None]
    assert await store.map_all("missing") == {}


async def test_map_all_many_reads_each_map_as_map_all(store: Store) -> None:
    await store.map_set("m1", {"a": b"x", "b": b""})
    await store.map_incr("m2", {"n": 7})
    keys = ["m1", "missing", "m2", "m1"]
    assert await store.map_all_many(keys) == [await store.map_all(key) for key in keys]
    assert await store.map_all_many(keys) == [
        {"a": b"x", "b": b""},
        {},
        {"n": b"7"},
        {"a": b"x", "b": b""},
    ]
    assert await store.map_all_many([]) == []


async def test_sorted_set_ranges_by_score(store: Store) -> None:
    await store.zadd("z", {"c": 3, "a": 1, "b": 2, "b2": 2})
    assert await store.zrange_by_score("z", 2, 3) == [("b", 2.0), ("b2", 2.0), ("c", 3.0)]
    assert await store.zrange_by_score("z", float("-inf"), float("inf"), offset=1, limit=2) == [
        ("b", 2.0),
        ("b2", 2.0),
    ]
    assert await store.zcard("z") == 4


async def test_sorted_set_update_and_remove(store: Store) -> None:
    await store.zadd("z", {"a": 1, "b": 2})
    await store.zadd("z", {"a": 5})
    assert await store.zrange_by_score("z", 0, 10) == [("b", 2.0), ("a", 5.0)]
    assert await store.zrem("z", ["a", "missing"]) == 1
    assert await store.zrange_by_score("z", 0, 10) == [("b", 2.0)]
    assert await store.zrange_by_score("missing", 0, 10) == []


@pytest.mark.parametrize("kind", ["list", "map", "zset", "counter", "periodic"])
async def test_delete_removes_any_kind(store: Store, kind: str) -> None:
    if kind == "list":
        await store.list_push("k", [b"1"], max_len=5)
    elif kind == "map":
        await store.map_set("k", {"a": b"1"})
    elif kind == "zset":
        await store.zadd("k", {"a": 1})
    elif kind == "counter":
        await store.incr("k")
    else:
        await store.periodic_add([("k", 0, 1)], bucket_ms=1000, keep_ms=10_000)
    assert await store.delete(["k"]) == 1
    assert await store.delete(["k"]) == 0


async def test_list_remove_drops_every_equal_element(store: Store) -> None:
    await store.list_push("l", [b"a", b"b", b"a", b"c"], max_len=10)
    assert await store.list_remove("l", [b"a", b"zz"]) == 2
    assert await store.list_range("l") == [b"c", b"b"]
    assert await store.list_remove("l", []) == 0
    assert await store.list_remove("missing", [b"a"]) == 0
    assert await store.list_remove("l", [b"b", b"c"]) == 2
    assert await store.list_range("l") == []


async def test_map_increments_answer_the_new_values(store: Store) -> None:
    assert await store.map_incr("m", {"a": 2, "b": -1}) == {"a": 2, "b": -1}
    assert await store.map_incr("m", {"a": 3}) == {"a": 5}


async def test_map_add_sets_only_absent_fields(store: Store) -> None:
    assert await store.map_add("m", {"a": b"1", "b": b"2"}) == [True, True]
    assert await store.map_add("m", {"a": b"9", "c": b"3"}) == [False, True]
    assert await store.map_get("m", ["a", "b", "c"]) == [b"1", b"2", b"3"]


async def test_map_writes_can_set_an_expiry(store: Store) -> None:
    await store.map_incr("counted", {"a": 1}, ttl_ms=60_000)
    await store.map_add("added", {"a": b"1"}, ttl_ms=60_000)
    for key in ("counted", "added"):
        left = await store.ttl_ms(key)
        assert left is not None
        assert 0 < left <= 60_000
