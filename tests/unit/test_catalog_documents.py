"""`CatalogCache.documents` answers what `CatalogCache.items` answers, looking up lazily."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from relevo.catalog_cache import CatalogCache, Held
from relevo.clock import ManualClock
from relevo.store import keys
from relevo.store.memory import MemoryStore

IDS = [f"i{n}" for n in range(8)]
documents = st.dictionaries(
    st.sampled_from(IDS),
    st.none() | st.fixed_dictionaries({"category": st.sampled_from(["a", "b"])}),
)


@given(held=documents, asked=st.lists(st.sampled_from(IDS), max_size=10))
def test_held_documents_read_like_the_dict_items_gives(
    held: dict[str, dict[str, Any] | None], asked: list[str]
) -> None:
    asked = [item_id for item_id in asked if item_id in held]
    expected = {item_id: held[item_id] for item_id in asked if held[item_id] is not None}
    found = Held(set(asked), held)
    assert {item_id: found.get(item_id) for item_id in IDS} == {
        item_id: expected.get(item_id) for item_id in IDS
    }
    assert bool(found) is bool(expected)
    assert dict(found) == expected
    assert len(found) == len(expected)


def test_documents_are_looked_up_lazily_only_when_all_are_held() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        store = MemoryStore(clock)
        await store.set_many(
            {keys.item_key(item_id): orjson.dumps({"item_id": item_id}) for item_id in "ab"}
        )
        cache = CatalogCache(store, clock, check_every_ms=1_000)
        first = await cache.documents(["a", "missing"])  # not held yet: read
        assert type(first) is dict
        assert first == {"a": {"item_id": "a"}}
        again = await cache.documents(["missing", "a"])
        assert type(again) is Held
        assert dict(again) == first
        assert dict(await cache.documents(["b", "a"])) == await cache.items(["b", "a"])

    asyncio.run(scenario())
