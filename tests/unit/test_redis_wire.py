"""The shared pipelined connection (`relevo.store.redis_wire`), on a redis-server of each
test's own (stopped, paused and restarted here): many callers at once get their own
replies; a caller that gives up leaves the connection good; a server that stops
answering, goes away or comes back, another event loop, a password and a database are
all handled as redis-py's pool handled them; blocking reads keep to their own
connection; unix sockets too, TLS stays with the pool."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relevo.errors import Unavailable
from relevo.store.redis import RedisStore
from relevo.store.redis_wire import DEFAULT_RESP_VERSION, Endpoint, endpoint_of
from tests.support.polling import wait_until
from tests.support.servers import RedisServer, redis_binary


@pytest.fixture
async def store(own_redis: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(own_redis.url, prefix="w")
    yield store
    await store.close()


async def connected_clients(store: RedisStore) -> int:
    info = await store.client.info("clients")
    return int(info["connected_clients"])


async def test_callers_at_once_share_one_connection_and_get_their_own_replies(
    store: RedisStore,
) -> None:
    await store.set_many({f"k{n}": str(n).encode() for n in range(300)})
    assert store.wire is not None
    calls = [
        store._send([("GET", store.k(f"k{n}")), ("STRLEN", store.k(f"k{n}"))]) for n in range(300)
    ]
    calls.append(store._send([("HINCRBY", store.k("k1"), "f", 1)], raise_on_error=False))
    replies = await asyncio.gather(*calls)
    assert replies[:300] == [[str(n).encode(), len(str(n))] for n in range(300)]
    assert isinstance(replies[300][0], ResponseError)  # an error is that caller's alone
    assert await store.get_many(["k7", "none", "k299"]) == [b"7", None, b"299"]
    # the pool's connection (used by `info` and `set_many`) and the wire's, no more
    assert await connected_clients(store) == 2


async def test_an_empty_round_trip_takes_no_place_in_the_queue(store: RedisStore) -> None:
    async with asyncio.timeout(5):  # (it waited for ever)
        assert await store._send([]) == []
    await store.set_many({"a": b"1"})
    assert await store.get("a") == b"1"  # not handed to the empty call before it


async def test_a_caller_that_gives_up_leaves_the_connection_usable(store: RedisStore) -> None:
    await store.set_many({"a": b"1", "b": b"2"})
    assert await store.get("a") == b"1"
    assert store.wire is not None
    connection = store.wire._connection
    abandoned = asyncio.create_task(store.get("a"))
    await asyncio.sleep(0)  # (a turn of the loop: its command is queued, not answered)
    abandoned.cancel()
    assert await store.get("b") == b"2"  # not the reply to "a", which was dropped
    assert store.wire._connection is connection
    assert abandoned.cancelled()


async def test_a_server_that_stops_answering_times_out_and_is_reconnected(
    own_redis: RedisServer, store: RedisStore
) -> None:
    await store.set_many({"a": b"1"})
    assert store.wire is not None
    store.wire.timeout = 0.3
    assert await store.get("a") == b"1"
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        waiting = [asyncio.create_task(store.get("a")) for _ in range(3)]
        for call in waiting:
            with pytest.raises(Unavailable, match=r"no reply from redis within 0\.3 s"):
                await call
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert await store.get("a") == b"1"  # a new connection


async def test_a_session_that_does_not_open_in_time_is_given_up(own_redis: RedisServer) -> None:
    """The handshake (``HELLO``) unanswered: the connection is closed, not kept."""
    store = RedisStore(own_redis.url, prefix="w")
    assert store.wire is not None
    store.wire.connect_timeout = 0.3
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)  # connections are accepted, never answered
    try:
        with pytest.raises(Unavailable):
            await store.get("a")
        assert store.wire._connection is None
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    await store._send([("SET", store.k("a"), b"1")])
    assert await store.get("a") == b"1"
    # the given-up connection was closed: the server ends with the wire's and the pool's
    deadline = asyncio.get_running_loop().time() + 5
    while (clients := await connected_clients(store)) != 2:
        assert asyncio.get_running_loop().time() < deadline, f"{clients} connections"
        await asyncio.sleep(0.02)
    await store.close()


async def test_a_restarted_server_is_reconnected(own_redis: RedisServer, store: RedisStore) -> None:
    await store.set_many({"a": b"1"})
    assert await store.get("a") == b"1"
    own_redis.stop()
    with pytest.raises(Unavailable):
        await store.get("a")
    with pytest.raises(Unavailable):  # refused again: no connection is left half-open
        await store.get("a")
    own_redis.start()  # the same port, empty (no persistence)
    assert await store.get("a") is None
    await store.set_many({"a": b"2"})
    assert await store.get("a") == b"2"


def test_a_closed_store_connects_again_in_another_event_loop(own_redis: RedisServer) -> None:
    """As a command line tool runs: each ``asyncio.run`` uses the store and closes it."""
    store = RedisStore(own_redis.url, prefix="w")

    async def write_and_read(value: bytes) -> bytes | None:
        try:
            await store._send([("SET", store.k("a"), value)])
            return await store.get("a")
        finally:
            await store.close()

    assert asyncio.run(write_and_read(b"1")) == b"1"
    assert asyncio.run(write_and_read(b"2")) == b"2"


async def test_password_and_database_are_those_of_the_url(own_redis: RedisServer) -> None:
    admin = own_redis.client()
    admin.config_set("requirepass", "s3cret")
    try:
        base = f"redis://:s3cret@127.0.0.1:{own_redis.port}"
        store = RedisStore(base + "/3", prefix="w")
        try:
            await store.set_many({"a": b"1"})
            assert await store.get("a") == b"1"
            assert await store._send([("CLIENT", "INFO")])  # (wire: authenticated)
            other = RedisStore(base + "/0", prefix="w")
            assert await other.get("a") is None  # another database
            await other.close()
        finally:
            await store.close()
        wrong = RedisStore(f"redis://:nope@127.0.0.1:{own_redis.port}/0", prefix="w")
        with pytest.raises(Unavailable):
            await wrong.get("a")
        await wrong.close()
    finally:
        admin.execute_command("AUTH", "s3cret")
        admin.config_set("requirepass", "")
        admin.close()


async def test_a_blocking_read_holds_up_nobody(store: RedisStore) -> None:
    """``XREADGROUP ... BLOCK`` goes `exclusive`, on a pooled connection: on the shared
    one every other caller would wait for it."""
    stream = store.k("s")
    await store._send([("XGROUP", "CREATE", stream, "g", "$", "MKSTREAM")])
    read = ("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "BLOCK", 5_000, "STREAMS", stream, ">")
    blocked = asyncio.create_task(store._send([read], exclusive=True))
    await store.set_many({"a": b"1"})
    for _ in range(20):
        assert await store.get("a") == b"1"
    assert not blocked.done()
    await store._send([("XADD", stream, "*", "f", "v")])
    ((reply,),) = [await blocked]
    assert reply  # the entry just added


def test_the_wire_goes_where_redis_py_would_connect_plainly(tmp_path: Path) -> None:
    """TCP and unix sockets take the wire, with the URL's credentials, database and
    protocol; TLS keeps redis-py's pool (the wire does not speak it)."""
    tcp = endpoint_of(Redis.from_url("redis://u:pw@h:7000/2?protocol=2").connection_pool)
    assert tcp == Endpoint(host="h", port=7000, db=2, username="u", password="pw", protocol=2)
    assert tcp.handshake() == [("AUTH", "u", "pw"), ("SELECT", 2)]
    socket = tmp_path / "r.sock"
    unix = endpoint_of(Redis.from_url(f"unix://{socket}?db=1").connection_pool)
    assert unix == Endpoint(path=str(socket), db=1, protocol=DEFAULT_RESP_VERSION)
    assert endpoint_of(Redis.from_url("rediss://h:7000/0").connection_pool) is None
    resp3 = Endpoint(host="h", password="pw", protocol=3, client_name="relevo")
    assert resp3.handshake() == [
        ("HELLO", 3, "AUTH", "default", "pw"),
        ("CLIENT", "SETNAME", "relevo"),
    ]


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    """A redis-server listening on a unix socket only."""
    socket = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [redis_binary(), "--port", "0", "--unixsocket", str(socket), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(socket.exists, timeout=10)
        yield socket
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_a_unix_socket_is_spoken_to_through_the_wire(unix_socket: Path) -> None:
    store = RedisStore(f"unix://{unix_socket}?db=1", prefix="w")
    try:
        await store._send([("SET", store.k("a"), b"1")])
        assert await store.get("a") == b"1"
        assert store.wire is not None
        assert store.wire.endpoint.path == str(unix_socket)
    finally:
        await store.close()
