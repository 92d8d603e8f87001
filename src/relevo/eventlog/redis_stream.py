"""The Redis event log: a Redis Stream, with an *in-flight* set for crash recovery.

`append` runs one Lua script that XADDs every record and remembers its id in a
sorted set of records not yet applied (scored by arrival time): both change
together, and with ``appendonly yes`` + ``appendfsync always`` both are fsynced
before Redis replies, so an acknowledged event survives a crash of Redis too.
With ``appendfsync everysec`` up to about one second of acknowledged events can be
lost if the Redis host crashes (not if only relevo crashes).

Once a batch is applied to profiles, its ids leave the in-flight set. After a
crash, whatever is still in flight is applied again (`in_flight` / `read`):
application is idempotent, so this can never double-count.

The Parquet archiver reads the stream through a consumer group (``archive``), so a
crashed archiver's records are redelivered. The stream is trimmed below the
oldest record that is in flight or not yet archived.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any, cast

import orjson
from redis.exceptions import ResponseError

from relevo.eventlog.base import LogRecord, RecordKind
from relevo.store.redis import RedisStore, _unavailable

_APPEND = """
local ids = {}
for i = 2, #ARGV, 3 do
  local id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[i], 'u', ARGV[i + 1], 'd', ARGV[i + 2])
  redis.call('ZADD', KEYS[2], ARGV[1], id)
  ids[#ids + 1] = id
end
return ids
"""

ARCHIVE_GROUP = "archive"


class RedisStreamLog:
    """Stream ``<prefix>:{log}:events`` and in-flight set ``<prefix>:{log}:inflight``.

    Both keys share the hash tag ``{log}``, so the append script is valid on Redis Cluster.
    """

    def __init__(self, store: RedisStore) -> None:
        self.client: Any = store.client
        self.stream = store.k("{log}:events")
        self.inflight = store.k("{log}:inflight")
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._append = self.client.register_script(_APPEND)

    @_unavailable
    async def open(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, ARCHIVE_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    @_unavailable
    async def append(self, records: Sequence[LogRecord], now_ms: int = 0) -> list[str]:
        if not records:
            return []
        args: list[Any] = [now_ms]
        for record in records:
            args.extend((record.kind, record.key, record.body))
        ids = await self._append(keys=[self.stream, self.inflight], args=args)
        return [id_.decode() for id_ in ids]

    @_unavailable
    async def applied(self, positions: Sequence[str]) -> None:
        """These records are in the profiles now; they need no recovery."""
        if positions:
            await self.client.zrem(self.inflight, *positions)

    @_unavailable
    async def in_flight(self, arrived_before_ms: float, limit: int) -> list[LogRecord]:
        """Records appended before `arrived_before_ms` and not yet marked applied."""
        ids = await self.client.zrangebyscore(
            self.inflight, "-inf", arrived_before_ms, start=0, num=limit
        )
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for id_ in ids:
                pipe.xrange(self.stream, id_, id_)
            replies = await pipe.execute()
        records, missing = [], []
        for id_, entries in zip(ids, replies, strict=True):
            if entries:
                records.append(_record(*entries[0]))
            else:  # trimmed away: nothing left to recover
                missing.append(id_)
        if missing:
            await self.client.zrem(self.inflight, *missing)
        return records

    @_unavailable
    async def check(self) -> None:
        await self.client.ping()

    @_unavailable
    async def archive_batch(self, limit: int) -> list[LogRecord]:
        try:
            return await self._archive_batch(limit)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.open()  # Redis lost the stream (a restart without persistence)
            return await self._archive_batch(limit)

    async def _archive_batch(self, limit: int) -> list[LogRecord]:
        # First what this consumer was given but never acknowledged, then new records.
        for start in ("0", ">"):
            reply = await self.client.xreadgroup(
                ARCHIVE_GROUP, self.consumer, {self.stream: start}, count=limit
            )
            entries = reply[0][1] if reply else []
            if entries:
                return [_record(id_, fields) for id_, fields in entries if fields]
        claimed = await self.client.xautoclaim(
            self.stream, ARCHIVE_GROUP, self.consumer, min_idle_time=60_000, count=limit
        )
        return [_record(id_, fields) for id_, fields in claimed[1] if fields]

    @_unavailable
    async def archive_done(self, records: Sequence[LogRecord]) -> None:
        if records:
            await self.client.xack(self.stream, ARCHIVE_GROUP, *[r.position for r in records])
            await self._trim()

    async def _trim(self) -> None:
        """Forget what is archived and applied: below the oldest pending or in-flight id."""
        floor: list[str] = []
        pending = await self.client.xpending(self.stream, ARCHIVE_GROUP)
        if pending["pending"]:
            floor.append(pending["min"].decode())
        groups = await self.client.xinfo_groups(self.stream)
        for group in groups:
            if group["name"].decode() == ARCHIVE_GROUP:
                floor.append(_next_id(group["last-delivered-id"].decode()))
        oldest = await self.client.zrange(self.inflight, 0, 0)
        if oldest:
            floor.append(oldest[0].decode())
        if floor:
            await self.client.xtrim(self.stream, minid=min(floor, key=_id_key), approximate=True)

    @_unavailable
    async def erase(self, user_id: str) -> int:
        """XDEL the user's entries and forget them in the in-flight set.

        It reads the whole stream, which holds only records not yet archived or applied
        (normally seconds' worth), in pages of 1,000. XDEL hides an entry at once; Redis
        frees its bytes when the stream node holding it is trimmed away (after the next
        archive pass), and the AOF keeps the original command until it is rewritten.
        """
        doomed: list[bytes] = []
        start = "-"
        while True:
            page = await self.client.xrange(self.stream, start, "+", count=1000)
            for id_, fields in page:
                if fields.get(b"k") == b"event" and _belongs(fields, user_id):
                    doomed.append(id_)
            if len(page) < 1000:
                break
            start = "(" + page[-1][0].decode()
        for chunk in range(0, len(doomed), 1000):
            ids = doomed[chunk : chunk + 1000]
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xdel(self.stream, *ids)
                pipe.zrem(self.inflight, *ids)
                await pipe.execute()
        return len(doomed)

    async def close(self) -> None:
        return None


def _belongs(fields: dict[bytes, bytes], user_id: str) -> bool:
    if fields[b"u"].decode() == user_id:
        return True
    body = orjson.loads(fields[b"d"])
    return bool(body.get("user_id") == user_id or body.get("anonymous_id") == user_id)


def _record(id_: bytes, fields: dict[bytes, bytes]) -> LogRecord:
    kind = cast(RecordKind, fields[b"k"].decode())
    return LogRecord(kind=kind, key=fields[b"u"].decode(), body=fields[b"d"], position=id_.decode())


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(stream_id: str) -> str:
    ms, seq = _id_key(stream_id)
    return f"{ms}-{seq + 1}"
