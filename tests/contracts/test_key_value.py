"""Contract: key-value with TTL."""

from __future__ import annotations

from relevo.store.base import MapIncr, Store
from tests.conftest import StoreHarness
from tests.support.polling import eventually


async def test_missing_key_reads_none(store: Store) -> None:
    assert await store.get("nothing") is None
    assert await store.get_many(["a", "b"]) == [None, None]


async def test_set_then_get_many_keeps_order(store: Store) -> None:
    await store.set_many({"a": b"1", "b": b"2"})
    assert await store.get("a") == b"1"
    assert await store.get_many(["b", "missing", "a"]) == [b"2", None, b"1"]


async def test_set_replaces(store: Store) -> None:
    await store.set_many({"a": b"old"})
    await store.set_many({"a": b"new"})
    assert await store.get("a") == b"new"


async def test_write_many_sets_values_and_increments_maps(store: Store) -> None:
    await store.map_incr("counts", {"seen": 1})
    await store.write_many(
        {"doc": b"1", "other": b"2"},
        ttl_ms=60_000,
        increments=[
            MapIncr("counts", {"seen": 2, "new": 1}),
            MapIncr("capped", {"x": 1}, ttl_ms=30_000),
            MapIncr("untouched", {}),
        ],
    )
    assert await store.get_many(["doc", "other"]) == [b"1", b"2"]
    assert await store.map_all("counts") == {"seen": b"3", "new": b"1"}
    assert await store.map_all("capped") == {"x": b"1"}
    assert await store.map_all("untouched") == {}
    doc_left, capped_left = await store.ttl_ms("doc"), await store.ttl_ms("capped")
    assert doc_left is not None
    assert 30_000 < doc_left <= 60_000
    assert capped_left is not None
    assert 0 < capped_left <= 30_000
    assert await store.ttl_ms("counts") is None


async def test_write_many_of_nothing_or_only_counters(store: Store) -> None:
    await store.write_many({})
    await store.write_many({}, increments=[MapIncr("m", {"a": 1})])
    assert await store.map_all("m") == {"a": b"1"}


async def test_delete_counts_existing_keys(store: Store) -> None:
    await store.set_many({"a": b"1", "b": b"2"})
    assert await store.delete(["a", "missing"]) == 1
    assert await store.get("a") is None
    assert await store.get("b") == b"2"


async def test_ttl_is_reported_and_absent_without_expiry(store: Store) -> None:
    await store.set_many({"short": b"1"}, ttl_ms=60_000)
    await store.set_many({"forever": b"1"})
    left = await store.ttl_ms("short")
    assert left is not None
    assert 0 < left <= 60_000
    assert await store.ttl_ms("forever") is None
    assert await store.ttl_ms("missing") is None


async def test_key_expires_after_its_ttl(harness: StoreHarness) -> None:
    store = harness.store
    await store.set_many({"brief": b"1"}, ttl_ms=50)
    await store.set_many({"kept": b"1"})
    if harness.backend == "embedded":
        harness.clock.advance(51)
    await eventually(lambda: _gone(store, "brief"), within=3)
    assert await store.get("kept") == b"1"


async def test_setting_again_without_ttl_clears_the_expiry(store: Store) -> None:
    await store.set_many({"a": b"1"}, ttl_ms=60_000)
    await store.set_many({"a": b"2"})
    assert await store.ttl_ms("a") is None


async def _gone(store: Store, key: str) -> bool:
    return await store.get(key) is None


async def test_a_lease_has_one_holder_until_it_expires(harness: StoreHarness) -> None:
    store = harness.store
    assert await store.lease("job", "a", 50)
    assert await store.lease("job", "a", 60_000)  # the holder extends it
    assert not await store.lease("job", "b", 60_000)
    assert await store.delete(["job"]) == 1
    assert await store.lease("job", "b", 50)
    if harness.backend == "embedded":
        harness.clock.advance(51)
    await eventually(lambda: store.lease("job", "a", 60_000), within=3)
    assert not await store.lease("job", "b", 60_000)


async def test_only_the_holder_releases_a_lease(store: Store) -> None:
    assert await store.lease("job", "a", 60_000)
    assert not await store.release("job", "b")
    assert not await store.lease("job", "b", 60_000)
    assert await store.release("job", "a")
    assert await store.lease("job", "b", 60_000)
