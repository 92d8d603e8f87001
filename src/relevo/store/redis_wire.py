"""`Wire`: one pipelined connection to a Redis node, shared by all of a process's calls.

Why: a round trip through redis-py's connection pool cost the API process 0.09-0.14 ms
of CPU (check-out and check-in with their bookkeeping, a health check, a timer, a
`StreamReader` future and the read loop around hiredis), of which the socket's own work
is about 0.04 ms; a decision makes about three (`bench.decide_cpu`, whose reference row
is one such round trip). Here every caller's commands go on one connection, in the order
they were written, and the replies are handed out in that order from the protocol's
`data_received` callback: no task, timer, lock or pool per call. The commands written
during one turn of the event loop leave in one write (pipelined across callers, as
ioredis and node-redis do), so under load the system calls are shared too.

What it promises, as the pool did:

- A caller's commands are written together, and its replies are its own.
- A caller that gives up (cancelled, say by a decision's deadline) keeps its place: its
  replies are read and dropped when they come, and the connection stays usable.
- A connection whose oldest command has waited `timeout` seconds for its replies is
  closed, and everyone waiting on it fails with `redis.exceptions.TimeoutError`; a lost
  connection fails its callers with `redis.exceptions.ConnectionError`. The next call
  connects again (calls arriving meanwhile share that attempt).
- It speaks the protocol version redis-py would (RESP3 from redis-py 6 on) and
  authenticates and selects the database as redis-py does, so replies have the shapes
  the callers already read.

Never send a blocking command (``BLOCK``, ``BLPOP``, ``WAIT``) on it: it would hold up
every other caller for its whole wait (`relevo.store.redis.RedisStore._send` has an
``exclusive`` path for those).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import hiredis
import redis.utils
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

DEFAULT_RESP_VERSION: int = getattr(redis.utils, "DEFAULT_RESP_VERSION", 2)
"""The protocol redis-py speaks unless told (3 from redis-py 6 on, 2 before)."""
_NOT_ENOUGH_DATA = object()
_PUSH: Any = getattr(hiredis, "PushNotification", None)
"""RESP3 push messages (hiredis ≥ 3.2): none come on a connection that never subscribes
or tracks, and one that did would not be a reply to anybody."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect: what redis-py's pool would use."""

    host: str | None = None
    port: int = 6379
    path: str | None = None  # a unix socket instead of host and port
    db: int = 0
    username: str | None = None
    password: str | None = None
    protocol: int = 3
    client_name: str | None = None

    def handshake(self) -> list[tuple[str | int, ...]]:
        """The commands that open a session, as redis-py's ``on_connect`` sends them."""
        commands: list[tuple[str | int, ...]] = []
        auth: tuple[str, ...] = ()
        if self.password is not None:
            auth = (self.username or "default", self.password)
        if self.protocol == 3:
            commands.append(("HELLO", 3, *(("AUTH", *auth) if auth else ())))
        elif auth:
            commands.append(("AUTH", *(auth if self.username else auth[1:])))
        if self.client_name:
            commands.append(("CLIENT", "SETNAME", self.client_name))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


class _Waiting:
    """One caller's place in the queue: how many replies it expects, those read so far."""

    __slots__ = ("expected", "future", "replies", "sent_at")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int, sent_at: float) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[Any] = []
        self.sent_at = sent_at


class _Connection(asyncio.Protocol):
    """One connection: writes coalesced per loop turn, replies matched in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.reader = hiredis.Reader(
            protocolError=InvalidResponse,
            replyError=BaseParser.parse_error,
            notEnoughData=_NOT_ENOUGH_DATA,
        )
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[_Waiting] = deque()
        self.outgoing: list[bytes] = []
        self.watchdog: asyncio.TimerHandle | None = None
        self.error: Exception | None = None  # set once closed: why

    @property
    def usable(self) -> bool:
        return self.error is None and self.transport is not None

    # -- calls ---------------------------------------------------------------------------
    def send(self, packed: bytes, expected: int) -> asyncio.Future[list[Any]]:
        """Queue `packed` (holding `expected` commands); the future of their replies."""
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        if self.error is not None:
            future.set_exception(self.error)
            return future
        self.waiting.append(_Waiting(future, expected, self.loop.time()))
        if not self.outgoing:
            self.loop.call_soon(self._flush)
        self.outgoing.append(packed)
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(self.loop.time() + self.timeout, self._check)
        return future

    def _flush(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if self.error is None and self.transport is not None and outgoing:
            self.transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    def _check(self) -> None:
        """The watchdog: the oldest caller has waited too long, or it is re-armed for it."""
        self.watchdog = None
        if not self.waiting or self.error is not None:
            return
        due = self.waiting[0].sent_at + self.timeout
        if self.loop.time() >= due:
            self.fail(RedisTimeoutError(f"no reply from redis within {self.timeout:g} s"))
        else:
            self.watchdog = self.loop.call_at(due, self._check)

    # -- the protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not _NOT_ENOUGH_DATA:
                if _PUSH is not None and type(reply) is _PUSH:
                    continue
                head = waiting[0]  # IndexError: a reply nobody asked for
                head.replies.append(reply)
                if len(head.replies) == head.expected:
                    waiting.popleft()
                    if not head.future.done():  # its caller may have given up
                        head.future.set_result(head.replies)
        except (InvalidResponse, IndexError) as error:
            self.fail(RedisConnectionError(f"redis protocol out of step: {error!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to redis lost: {exc or 'closed'}"))

    def fail(self, error: Exception) -> None:
        """Close the connection for good; every caller still waiting fails with `error`."""
        if self.error is None:
            self.error = error
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        waiting, self.waiting = self.waiting, deque()
        for caller in waiting:
            if not caller.future.done():
                caller.future.set_exception(self.error)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Wire:
    """The process's pipelined connection to one Redis node (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, *, timeout: float, connect_timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def call(self, packed: bytes, expected: int) -> list[Any]:
        """The replies (as hiredis reads them, errors as `ResponseError` values) to the
        `expected` commands in `packed`; a reply that says the server cannot serve yet
        (``LOADING``: a `ConnectionError`) is raised, as redis-py raises it."""
        if expected == 0:  # nothing to send: no place in the queue (no reply would end it)
            return []
        connection = self._connection
        if (
            connection is None
            or not connection.usable
            or connection.loop is not asyncio.get_running_loop()
        ):
            connection = await self._connect()
        replies = await connection.send(packed, expected)
        for reply in replies:
            if isinstance(reply, RedisConnectionError):
                raise reply
        return replies

    async def _connect(self) -> _Connection:
        """A new connection, opened by a task of its own that every caller arriving
        meanwhile shares (a caller cancelled while it waits does not cancel it)."""
        loop = asyncio.get_running_loop()
        task = self._connecting
        if task is None or task.get_loop() is not loop:
            task = self._connecting = loop.create_task(self._open(loop))
            task.add_done_callback(self._opened)
        return await asyncio.shield(task)

    def _opened(self, task: asyncio.Task[_Connection]) -> None:
        """(Runs before the callers resume: it was the task's first callback.)"""
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._forget()
            self._connection = task.result()

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        endpoint = self.endpoint

        def protocol() -> _Connection:
            return _Connection(loop, self.timeout)

        async with asyncio.timeout(self.connect_timeout):
            if endpoint.path is not None:
                _, connection = await loop.create_unix_connection(protocol, endpoint.path)
            else:
                _, connection = await loop.create_connection(
                    protocol, endpoint.host or "localhost", endpoint.port
                )
            handshake = endpoint.handshake()
            try:
                if handshake:
                    packed = b"".join(map(hiredis.pack_command, handshake))  # type: ignore[arg-type]
                    replies = await connection.send(packed, len(handshake))
                    refused = [reply for reply in replies if isinstance(reply, Exception)]
                    if refused:
                        raise refused[0]
            except BaseException as error:  # refused, or too slow: never left open
                connection.fail(RedisConnectionError(f"redis session not opened: {error!r}"))
                raise
        return connection

    def _forget(self) -> None:
        """Drop the current connection (closed, or of another event loop)."""
        old, self._connection = self._connection, None
        if old is not None and old.error is None:
            # (its event loop may be closed: then there is nothing left to close)
            with contextlib.suppress(RuntimeError):
                old.fail(RedisConnectionError("connection replaced"))

    async def close(self) -> None:
        """Close the connection, and give up one being opened."""
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        self._forget()


def endpoint_of(pool: Any) -> Endpoint | None:
    """The `Endpoint` of redis-py's connection pool, or None where the wire does not go
    (TLS, a credential provider: what it does not replay keeps the pool)."""
    kwargs: dict[str, Any] = pool.connection_kwargs
    if kwargs.get("credential_provider") is not None:
        return None
    if pool.connection_class is Connection:
        host, port, path = kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)), None
    elif pool.connection_class is UnixDomainSocketConnection:
        host, port, path = None, Endpoint.port, kwargs["path"]
    else:
        return None
    return Endpoint(
        host=host,
        port=port,
        path=path,
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        protocol=int(kwargs.get("protocol") or DEFAULT_RESP_VERSION),
        client_name=kwargs.get("client_name"),
    )
