"""The Redis store writes its hot commands itself (`relevo.store.redis._pack`): exactly
the bytes redis-py's own packer writes, for every kind of argument the store sends."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from relevo.store.redis import _pack

arguments = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=40),
    st.integers(-(2**63), 2**63 - 1),
)
commands = st.lists(
    st.tuples(st.sampled_from(["GET", "SET", "HINCRBY", "ZREVRANGE", "MGET"])).flatmap(
        lambda name: st.lists(arguments, max_size=5).map(lambda rest: (*name, *rest))
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(commands=commands)
def test_packed_commands_are_the_bytes_redis_py_writes(
    commands: list[tuple[str | bytes | int, ...]],
) -> None:
    expected = b"".join(Connection().pack_commands(commands))
    assert _pack(commands) == expected
