"""The Redis store writes its hot commands itself (`relevo.store.redis._pack`): exactly
the bytes redis-py's own packer writes, for every kind of argument the store sends; its
scripts go as ``EVALSHA`` alone, and still run when the server forgot them."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from relevo.store import redis as redis_module
from relevo.store.base import DecayedAdd, DecayedRead
from relevo.store.redis import RedisStore, _pack
from tests.conftest import unique_prefix
from tests.support.servers import RedisServer

arguments = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=40),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
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
    commands: list[tuple[str | bytes | int | float, ...]],
) -> None:
    expected = b"".join(Connection().pack_commands(commands))
    assert _pack(commands) == expected


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url, prefix=unique_prefix())
    yield store
    await store.close()


async def test_scripts_the_server_forgot_are_loaded_and_run_once(store: RedisStore) -> None:
    """`run_scripts` sends ``EVALSHA`` only: after the server's script cache is emptied (a
    restart, ``SCRIPT FLUSH``), each call of a batch still runs exactly once."""
    entries = [("hits", 60_000 * n, 1) for n in range(3)] + [("hits", 0, 1)]
    await store.periodic_add(entries, 60_000, 3_600_000)
    await store.client.script_flush()
    await store.periodic_add(entries, 60_000, 3_600_000)
    assert await store.periodic_sum("hits", 0, 180_000, 60_000) == 8
    assert await store.client.hgetall(store.k("hits")) == {
        b"0": b"4",
        b"1": b"2",
        b"2": b"2",
        b"newest": b"2",
    }


async def test_a_failing_script_raises_its_error(store: RedisStore) -> None:
    await store.client.set(store.k("text"), b"x")
    with pytest.raises(ResponseError):  # HINCRBY on a string: the script's call fails
        await store.periodic_add([("text", 0, 1)], 60_000, 3_600_000)


async def test_both_reply_readers_read_the_same_replies(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies are read straight from redis-py's hiredis reader when its internals are
    there (`redis_module._fast_reader`), else through ``read_response``: both give the
    same values, errors included, and leave the connection ready for the next call."""
    connection = await store.client.connection_pool.get_connection()
    try:
        assert redis_module._fast_reader(connection._parser)  # the pinned redis-py has them
    finally:
        await store.client.connection_pool.release(connection)
    await store.client.set(store.k("text"), b"x" * 70_000)  # a reply over one socket read
    commands = [
        ("GET", store.k("text")),
        ("HINCRBY", store.k("text"), "f", 1),  # an error in the middle
        ("MGET", store.k("text"), store.k("none")),
        ("PING",),
    ]
    fast = await store._round_trip(commands, exclusive=True)
    monkeypatch.setattr(redis_module, "_fast_reader", lambda parser: False)
    slow = await store._round_trip(commands, exclusive=True)
    piped = await store._round_trip(commands)  # the shared connection (`redis_wire`)
    assert [type(r) for r in fast] == [type(r) for r in slow]
    assert fast[0] == slow[0] == b"x" * 70_000
    assert isinstance(fast[1], ResponseError)
    assert str(fast[1]) == str(slow[1])
    assert fast[2:] == slow[2:]
    assert [type(r) for r in piped] == [type(r) for r in fast]
    assert piped[0] == fast[0]
    assert str(piped[1]) == str(fast[1])
    assert piped[2:] == fast[2:]
    assert await store._round_trip([("PING",)], exclusive=True) == slow[3:]


@settings(max_examples=500, deadline=None)
@given(weights=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=30))
def test_decayed_weights_are_written_exactly(weights: list[float]) -> None:
    """`decayed_add` sends a zset's weights as their 8 bytes each: every double, exactly."""
    packed = redis_module._pack_weights(weights)
    assert len(packed) == 8 * len(weights)
    assert [w for (w,) in struct.iter_unpack("<d", packed)] == weights


async def test_decayed_weights_reach_the_server_exactly(store: RedisStore) -> None:
    """What the script adds is the weight itself (at the landmark, no decay): the bytes
    the store sends are read back by Lua's ``struct.unpack`` as the same double, each
    with its member, across the chunks of a zset and the zsets of one script."""
    weights = [0.1, 1 / 3, 2.0, 3, 1e-300, 123456.789e10, 0.7071067811865476, 5e-324]
    weights += [(2 / 3) ** n * 7 for n in range(40)]
    many = [1 / (n + 3) for n in range(2 * redis_module.DECAYED_MEMBERS_PER_COMMAND + 50)]
    adds = [
        DecayedAdd("d", {f"m{n}": w for n, w in enumerate(weights)}, at_ms=1_000),
        DecayedAdd("e", {f"n{n}": w for n, w in enumerate(many)}, at_ms=1_000),
    ]
    await store.decayed_add(adds, half_life_ms=60_000, max_len=1_000)
    found = await store.decayed_top(
        [DecayedRead("d", 60_000, 1_000), DecayedRead("e", 60_000, 1_000)], 1_000
    )
    assert dict(found[0]) == {f"m{n}": float(w) for n, w in enumerate(weights)}
    assert dict(found[1]) == {f"n{n}": w for n, w in enumerate(many)}


async def test_commands_are_written_straight_unless_a_health_check_is_due(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round trip on a pooled connection (`exclusive`: a blocking read) writes on the
    connection's stream writer (`redis_module._writable`:
    no ``asyncio.wait_for`` task per write) when redis-py would write at once; when its
    health check is due, or the connection lacks those internals, through
    ``send_packed_command`` (which sends the PING first). Both give the same replies."""
    sent: list[bytes] = []
    original = Connection.send_packed_command

    async def spy(self: Connection, command: bytes, check_health: bool = True) -> None:
        sent.append(command)
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", spy)
    await store.client.set(store.k("a"), b"1")
    assert await store._round_trip([("GET", store.k("a"))], exclusive=True) == [
        b"1"
    ]  # (a new connection's
    sent.clear()  # first write checks its health)
    assert await store._round_trip([("GET", store.k("a"))], exclusive=True) == [b"1"]
    assert sent == []  # written straight
    connection = await store.client.connection_pool.get_connection()
    try:
        assert redis_module._writable(connection)
        connection.next_health_check = -1.0  # a check is due
        assert not redis_module._writable(connection)
    finally:
        await store.client.connection_pool.release(connection)
    assert await store._round_trip([("GET", store.k("a")), ("PING",)], exclusive=True) == [
        b"1",
        b"PONG",
    ]
    assert len(sent) == 2  # redis-py's path: the health check's PING, then the commands
    assert await store._round_trip([("GET", store.k("a"))], exclusive=True) == [b"1"]
    assert len(sent) == 2  # the check done, straight again
    monkeypatch.setattr(redis_module, "_writable", lambda connection: False)
    assert await store._round_trip([("GET", store.k("a"))], exclusive=True) == [b"1"]
    assert len(sent) == 3


@given(
    st.lists(st.lists(st.text(max_size=4), max_size=6), max_size=8),
    st.sampled_from([True, False]),
)
def test_decayed_replies_decode_every_member_however_full_the_table_of_names(
    replies: list[list[str]], resp3: bool
) -> None:
    """Members are looked up among those decoded before (`_decayed`); the table starts
    over when full, and a reply larger than what is left still decodes whole."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redis_module, "MEMBER_NAMES", 5)
        patch.setattr(redis_module, "_member_names", {})
        longest = 0
        for members in replies:
            longest = max(longest, len(members))
            pairs = [(m, float(n)) for n, m in enumerate(members)]
            if resp3:
                reply: list[object] = [[m.encode(), s] for m, s in pairs]
            else:
                reply = [x for m, s in pairs for x in (m.encode(), b"%r" % s)]
            expected = [(m, s * 0.5) for m, s in pairs]
            assert redis_module._decayed(reply, 0.5) == expected
            assert len(redis_module._member_names) <= max(5, longest)
