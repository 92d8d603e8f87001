"""Contract: finding keys by prefix (erasure finds every key of a user this way)."""

from __future__ import annotations

from relevo.store.base import DocWrite, Store


async def test_keys_with_prefix_finds_every_kind_and_only_those(store: Store) -> None:
    await store.set_many({"{u:a}:kv": b"1", "{u:ab}:kv": b"2", "other": b"3"})
    await store.incr("{u:a}:counter")
    await store.list_push("{u:a}:list", [b"x"], max_len=5)
    await store.map_set("{u:a}:map", {"f": b"v"})
    await store.zadd("{u:a}:zset", {"m": 1.0})
    await store.docs_write([DocWrite("{u:a}:doc", "{u:a}:marks", 0, b"d", now_ms=1, marks=[b"m"])])
    found = sorted(await store.keys_with_prefix("{u:a}:"))
    expected = ["{u:a}:counter", "{u:a}:doc", "{u:a}:kv", "{u:a}:list", "{u:a}:map"]
    # The marks have their own key or live inside the document (Redis), as the backend
    # lays them out: either way they go with the user's keys.
    assert [key for key in found if key != "{u:a}:marks"] == sorted([*expected, "{u:a}:zset"])
    assert await store.keys_with_prefix("nothing") == []


async def test_glob_characters_in_a_prefix_are_literal(store: Store) -> None:
    await store.set_many({"{u:*}:kv": b"1", "{u:a}:kv": b"2", "{u:[a]}:kv": b"3"})
    assert await store.keys_with_prefix("{u:*}") == ["{u:*}:kv"]
    assert await store.keys_with_prefix("{u:[a]}") == ["{u:[a]}:kv"]


async def test_sample_keys_finds_up_to_limit_keys_of_the_prefix_and_suffix(store: Store) -> None:
    await store.set_many({f"{{u:{n}}}:profile": b"p" for n in range(30)})
    await store.set_many({f"{{u:{n}}}:other": b"o" for n in range(30)} | {"x:profile": b"x"})
    everything = await store.sample_keys("{u:", "}:profile", 100)
    assert sorted(everything) == sorted(f"{{u:{n}}}:profile" for n in range(30))
    some = await store.sample_keys("{u:", "}:profile", 7)
    assert len(some) == 7
    assert set(some) <= set(everything)
    assert await store.sample_keys("{u:", "}:profile", 0) == []
    assert await store.sample_keys("{u:*", "*", 5) == []  # glob characters are literal
