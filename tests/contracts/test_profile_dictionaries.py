"""Contract: a document read names only dictionaries the store's process then knows.

Profiles on Redis name the zstd dictionary they were compressed with
(`relevo.features.dictionaries`); a process that has never met it (it was trained and
activated by another) must still decode them: `docs_read` loads it from the store
before answering. Every backend does so, though only Redis writes such documents.
"""

from __future__ import annotations

import pytest

from relevo.features import dictionaries, site_dictionaries
from relevo.features.dictionaries import Dictionaries, MissingDictionary
from relevo.features.profile import ProfileState, RecentItem, decode, encode
from relevo.store.base import DocRead, DocWrite, Store


def _site_dictionary() -> bytes:
    """A small dictionary that is not the built-in one (its content is what matters)."""
    return b"recent items sku-1 sku-2 sku-3 view click add_to_cart purchase " * 40


async def test_docs_read_loads_the_dictionaries_its_documents_name(store: Store) -> None:
    other_process = Dictionaries()
    other_process.add(9, _site_dictionary())
    other_process.activate(9)
    await store.set_many({dictionaries.key(9): _site_dictionary()})
    state = ProfileState(user_id="u1", recent_items=[RecentItem(f"sku-{n}", n) for n in range(40)])
    blob = encode(state, dictionaries=other_process)
    assert blob[1] == 9
    await store.docs_write([DocWrite("{u:u1}:profile", "{u:u1}:applied", 0, blob, now_ms=1)])
    assert 9 not in store.dictionaries
    (doc,) = await store.docs_read([DocRead("{u:u1}:profile", "{u:u1}:applied")])
    assert 9 in store.dictionaries
    assert doc.value is not None
    assert decode(doc.value, store.dictionaries) == state


async def test_a_document_naming_a_dictionary_not_stored_says_what_to_restore(
    store: Store,
) -> None:
    other_process = Dictionaries()
    other_process.add(11, _site_dictionary())
    other_process.activate(11)
    state = ProfileState(user_id="u2", recent_items=[RecentItem(f"sku-{n}", n) for n in range(40)])
    blob = encode(state, dictionaries=other_process)
    await store.docs_write([DocWrite("{u:u2}:profile", "{u:u2}:applied", 0, blob, now_ms=1)])
    (doc,) = await store.docs_read([DocRead("{u:u2}:profile", "{u:u2}:applied")])
    assert doc.value == blob
    with pytest.raises(MissingDictionary, match="profile-dictionary:11"):
        decode(doc.value, store.dictionaries)


async def test_refresh_follows_the_active_dictionary(store: Store) -> None:
    assert await site_dictionaries.refresh(store) == dictionaries.BUILTIN
    await store.set_many({dictionaries.key(4): _site_dictionary()})
    await store.set_many({dictionaries.ACTIVE_KEY: b"4"})
    assert await site_dictionaries.refresh(store) == 4
    assert store.dictionaries.active == 4
