"""Contract: a batch of scripts over many users (many slots on a cluster) runs whole."""

from __future__ import annotations

from relevo.clock import ManualClock
from relevo.store import keys
from relevo.store.base import DocRead, DocWrite, Store

NOW = 1_767_225_600_000


async def test_a_thousand_users_written_in_one_batch(store: Store, clock: ManualClock) -> None:
    users = [f"user-{n}" for n in range(1000)]
    writes = [
        DocWrite(
            key=keys.profile_key(user),
            marks_key=keys.profile_marks_key(user),
            expected_version=0,
            value=user.encode(),
            now_ms=NOW,
        )
        for user in users
    ]
    assert await store.docs_write(writes) == [True] * 1000
    docs = await store.docs_read(
        [DocRead(keys.profile_key(u), keys.profile_marks_key(u)) for u in users]
    )
    assert [doc.value for doc in docs] == [u.encode() for u in users]
