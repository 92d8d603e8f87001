"""The Redis event log: partitioned Redis Streams, with an *in-flight* set for recovery.

Records are spread over `partitions` streams by their key (the user id for events),
so one user's records stay in order in one partition, partitions spread over the
nodes of a Redis Cluster (each partition's keys share the hash tag ``{log:<n>}``),
and workers share the load partition by partition (`relevo.worker`).

`append` runs one Lua script per partition that XADDs its records and, when the
API applies them itself (``RELEVO_APPLY=inline``, the default), remembers their ids
in a sorted set of records not yet applied (scored by arrival time): both change
together, and with ``appendonly yes`` + ``appendfsync always`` both are fsynced
before Redis replies, so an acknowledged event survives a crash of Redis too. With
``appendfsync everysec`` up to about one second of acknowledged events can be lost
if the Redis host crashes (not if only relevo crashes).

Inline: once a batch is applied to profiles, its ids leave the in-flight set; after a
crash whatever is still in flight is applied again (application is idempotent).
Worker mode (``RELEVO_APPLY=worker``): workers read each partition through the
consumer group ``apply``; what a crashed worker read but never acknowledged is
claimed by the next owner of the partition; a record that keeps failing goes to the
partition's dead-letter stream with the reason.

The Parquet archiver reads through the group ``archive``. A partition is trimmed
below its oldest record that is in flight, not yet applied, or not yet archived.
Positions are ``<partition>/<stream id>``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

import orjson
from redis.exceptions import ResponseError

from relevo.eventlog.base import LogRecord, RecordKind
from relevo.store.redis import RedisStore, _unavailable

# KEYS: stream, in-flight set. ARGV: now ms, track (1/0), then (kind, key, body) triples.
_APPEND = """
local ids = {}
local track = ARGV[2] == '1'
for i = 3, #ARGV, 3 do
  local id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[i], 'u', ARGV[i + 1], 'd', ARGV[i + 2])
  if track then redis.call('ZADD', KEYS[2], ARGV[1], id) end
  ids[#ids + 1] = id
end
return ids
"""

ARCHIVE_GROUP = "archive"
ARCHIVE_IDLE_MS = 60_000
"""How long records read by an archiver rest unarchived before another archiver takes them."""
APPLY_GROUP = "apply"


class RedisStreamLog:
    def __init__(self, store: RedisStore, partitions: int = 16, *, workers: bool = False) -> None:
        self.store = store
        self.client: Any = store.client
        self.partitions = partitions
        self.workers = workers
        self.streams = [store.k(f"{{log:{p}}}:events") for p in range(partitions)]
        self.inflight = [store.k(f"{{log:{p}}}:inflight") for p in range(partitions)]
        self.dead = [store.k(f"{{log:{p}}}:dead") for p in range(partitions)]
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._append = self.client.register_script(_APPEND)

    def partition_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.partitions

    @_unavailable
    async def open(self) -> None:
        groups = [ARCHIVE_GROUP, APPLY_GROUP] if self.workers else [ARCHIVE_GROUP]
        for stream in self.streams:
            for group in groups:
                try:
                    await self.client.xgroup_create(stream, group, id="0", mkstream=True)
                except ResponseError as error:
                    if "BUSYGROUP" not in str(error):
                        raise

    @_unavailable
    async def append(self, records: Sequence[LogRecord], now_ms: int = 0) -> list[str]:
        if not records:
            return []
        by_partition: dict[int, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            by_partition[self.partition_of(record.key)].append(index)
        track = "0" if self.workers else "1"
        calls = []
        for partition, indexes in by_partition.items():
            args: list[Any] = [now_ms, track]
            for index in indexes:
                record = records[index]
                args.extend((record.kind, record.key, record.body))
            calls.append((self._append, [self.streams[partition], self.inflight[partition]], args))
        replies = await self.store.run_scripts(calls)
        positions = [""] * len(records)
        for (partition, indexes), ids in zip(by_partition.items(), replies, strict=True):
            for index, id_ in zip(indexes, ids, strict=True):
                positions[index] = f"{partition}/{id_.decode()}"
        return positions

    @_unavailable
    async def applied(self, positions: Sequence[str]) -> None:
        """These records are in the profiles now; they need no recovery (inline mode)."""
        if self.workers or not positions:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for partition, ids in _by_partition(positions).items():
                pipe.zrem(self.inflight[partition], *ids)
            await pipe.execute()

    @_unavailable
    async def in_flight(self, arrived_before_ms: float, limit: int) -> list[LogRecord]:
        """Records appended before `arrived_before_ms` and not yet marked applied."""
        if self.workers:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for inflight in self.inflight:
                pipe.zrangebyscore(inflight, "-inf", arrived_before_ms, start=0, num=limit)
            found = await pipe.execute()
        wanted = [(p, id_) for p, ids in enumerate(found) for id_ in ids][:limit]
        if not wanted:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for partition, id_ in wanted:
                pipe.xrange(self.streams[partition], id_, id_)
            replies = await pipe.execute()
        records, missing = [], []
        for (partition, id_), entries in zip(wanted, replies, strict=True):
            if entries:
                records.append(_record(partition, *entries[0]))
            else:  # trimmed away: nothing left to recover
                missing.append(f"{partition}/{id_.decode()}")
        if missing:
            await self.applied_inline(missing)
        return records

    async def applied_inline(self, positions: Sequence[str]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for partition, ids in _by_partition(positions).items():
                pipe.zrem(self.inflight[partition], *ids)
            await pipe.execute()

    @_unavailable
    async def check(self) -> None:
        await self.client.ping()

    # -- workers --------------------------------------------------------------------------
    async def take_over(self, partition: int, consumer: str, count: int) -> list[LogRecord]:
        """Claim every record of the partition read but never acknowledged (its last owner
        died or lost its lease), oldest first."""
        return await self.reclaim(partition, consumer, 0, count)

    @_unavailable
    async def read_new(
        self, partitions: Sequence[int], consumer: str, count: int, block_ms: int | None
    ) -> list[LogRecord]:
        """New records of these partitions for `consumer` (blocking up to `block_ms`)."""
        if not partitions:
            return []
        if self.store.cluster:
            return await self._read_new_per_partition(partitions, consumer, count, block_ms)
        # Sent and parsed here, not by redis-py: its reply callbacks build a dict per
        # record, a tenth of what a worker spent per event around the feature code.
        command: list[str | int] = ["XREADGROUP", "GROUP", APPLY_GROUP, consumer, "COUNT", count]
        if block_ms is not None:
            command += ["BLOCK", block_ms]
        command += ["STREAMS", *(self.streams[p] for p in partitions)]
        command += [">"] * len(partitions)
        (reply,) = await self.store._send([command], exclusive=block_ms is not None)
        index = {self.streams[p].encode(): p for p in partitions}
        records: list[LogRecord] = []
        # a map of streams under RESP3 (redis-py's default here), pairs under RESP2
        pairs = reply.items() if isinstance(reply, dict) else reply or []
        for stream, entries in pairs:
            partition = index[stream]
            records.extend(
                _flat_record(partition, id_, fields) for id_, fields in entries if fields
            )
        return records

    async def _read_new_per_partition(
        self, partitions: Sequence[int], consumer: str, count: int, block_ms: int | None
    ) -> list[LogRecord]:
        """On a cluster one XREADGROUP cannot span partitions (each is its own slot): read
        each partition at once without blocking, and only when all are empty block on all
        of them together, so a busy partition never waits for an idle one."""
        share = max(1, count // len(partitions))

        async def read(partition: int, block: int | None) -> list[LogRecord]:
            reply = await self.client.xreadgroup(
                APPLY_GROUP, consumer, {self.streams[partition]: ">"}, count=share, block=block
            )
            entries = reply[0][1] if reply else []
            return [_record(partition, id_, fields) for id_, fields in entries if fields]

        found = await asyncio.gather(*(read(p, None) for p in partitions))
        if not any(found) and block_ms:
            found = await asyncio.gather(*(read(p, block_ms) for p in partitions))
        return [record for records in found for record in records]

    @_unavailable
    async def acknowledge(self, records: Sequence[LogRecord]) -> None:
        """These records are applied (worker mode)."""
        if not records:
            return
        await self.store._send(
            [
                ("XACK", self.streams[partition], APPLY_GROUP, *ids)
                for partition, ids in _by_partition([r.position for r in records]).items()
            ]
        )

    @_unavailable
    async def stalled(
        self, partitions: Sequence[int], idle_ms: int, group: str = APPLY_GROUP
    ) -> list[int]:
        """Those of `partitions` whose pending records (of `group`) may have rested
        `idle_ms` or more since they were read: those whose oldest pending record was
        logged at least that long ago by the server's clock (a stream id is its record's
        logging time, and a record is read after it is logged, so one logged later cannot
        have rested as long).

        Why: ``XAUTOCLAIM`` looks through up to ten times its ``COUNT`` of pending records
        to find idle ones, and a worker ran it on each of its partitions every second:
        about a millisecond of Redis each while a backlog kept a thousand records read and
        not yet acknowledged per partition (7.6% of Redis's command time in `bench.load`'s
        history), to find none. ``XPENDING``'s summary answers from the oldest entry.
        """
        if not partitions:
            return []
        streams = [self.streams[p] for p in partitions]
        if self.store.cluster:  # (each stream on its node; the nodes' clocks agree closely)
            found = await asyncio.gather(*(self.client.xpending(s, group) for s in streams))
            oldest = [summary["min"] if summary["pending"] else None for summary in found]
            seconds, micros = await self.client.time()
        else:
            *summaries, (seconds, micros) = await self.store._send(
                [*(("XPENDING", s, group) for s in streams), ("TIME",)]
            )
            oldest = [summary[1] if summary[0] else None for summary in summaries]
        cutoff = int(seconds) * 1000 + int(micros) // 1000 - idle_ms
        return [
            partition
            for partition, first in zip(partitions, oldest, strict=True)
            if first is not None and int(_text(first).split("-", 1)[0]) <= cutoff
        ]

    @_unavailable
    async def reclaim(
        self, partition: int, consumer: str, idle_ms: int, count: int
    ) -> list[LogRecord]:
        """Records of the partition pending for `idle_ms` or more, claimed for `consumer`
        (each claim counts as a delivery)."""
        claimed = await self.client.xautoclaim(
            self.streams[partition], APPLY_GROUP, consumer, min_idle_time=idle_ms, count=count
        )
        return [_record(partition, id_, fields) for id_, fields in claimed[1] if fields]

    @_unavailable
    async def deliveries(self, record: LogRecord) -> int:
        """How many times the group has delivered this record."""
        partition, id_ = _split(record.position)
        found = await self.client.xpending_range(
            self.streams[partition], APPLY_GROUP, min=id_, max=id_, count=1
        )
        return int(found[0]["times_delivered"]) if found else 0

    @_unavailable
    async def dead_letter(self, record: LogRecord, reason: str) -> None:
        """Park a record that can't be applied, with why, and stop redelivering it."""
        partition, id_ = _split(record.position)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead[partition],
                {"k": record.kind, "u": record.key, "d": record.body, "id": id_, "reason": reason},
                maxlen=100_000,
                approximate=True,
            )
            pipe.xack(self.streams[partition], APPLY_GROUP, id_)
            await pipe.execute()

    @_unavailable
    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        found = []
        for partition, stream in enumerate(self.dead):
            for id_, fields in await self.client.xrange(stream, count=limit):
                found.append(
                    {
                        "partition": partition,
                        "id": fields[b"id"].decode(),
                        "kind": fields[b"k"].decode(),
                        "key": fields[b"u"].decode(),
                        "reason": fields[b"reason"].decode(),
                        "parked": id_.decode(),
                    }
                )
        return found[:limit]

    @_unavailable
    async def lag(self) -> int:
        """Records appended but not yet applied (worker mode) or in flight (inline)."""
        total = 0
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in range(self.partitions):
                if self.workers:
                    pipe.xinfo_groups(self.streams[partition])
                    pipe.xrevrange(self.streams[partition], count=1)
                else:
                    pipe.zcard(self.inflight[partition])
            replies = await pipe.execute()
        if not self.workers:
            return sum(int(reply) for reply in replies)
        for groups, newest in zip(replies[::2], replies[1::2], strict=True):
            last_id = _text(newest[0][0]) if newest else None
            for group in groups:
                if _text(group["name"]) != APPLY_GROUP:
                    continue
                total += int(group.get("pending") or 0)
                # XINFO's `lag` can stay stale after an AOF reload: a group that was given
                # the stream's newest entry has nothing left to read, whatever it says.
                if last_id is not None and _text(group["last-delivered-id"]) != last_id:
                    total += int(group.get("lag") or 0)
        return total

    # -- archive --------------------------------------------------------------------------
    @_unavailable
    async def archive_batch(self, limit: int) -> list[LogRecord]:
        try:
            return await self._archive_batch(limit)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.open()  # Redis lost the streams (a restart without persistence)
            return await self._archive_batch(limit)

    async def _archive_batch(self, limit: int) -> list[LogRecord]:
        records: list[LogRecord] = []
        for partition, stream in enumerate(self.streams):
            if len(records) >= limit:
                break
            # First what this consumer was given but never acknowledged, then new records.
            for start in ("0", ">"):
                entries, erased = await self._read_archive(partition, start, limit - len(records))
                if erased:  # deleted since delivered (`erase`): nothing to archive, ever
                    await self.client.xack(stream, ARCHIVE_GROUP, *erased)
                if entries:
                    records.extend(entries)
                    break
            else:
                records += await self._reclaim_archive(partition, limit)
        return records

    async def _reclaim_archive(self, partition: int, count: int) -> list[LogRecord]:
        """Records another archiver read `ARCHIVE_IDLE_MS` ago or more and never archived
        (it died), claimed for this one.

        ``XAUTOCLAIM`` is sent only when the partition's oldest pending record was logged
        that long ago (`stalled`): it looks through the pending records one by one, and
        while other archivers hold their batches (up to 50,000 records each) it cost Redis
        about a millisecond per call to find none, several times a second in
        `bench.load`'s ingestion (one call per empty partition per archive pass).
        """
        if not await self.stalled([partition], ARCHIVE_IDLE_MS, ARCHIVE_GROUP):
            return []
        claimed = await self.client.xautoclaim(
            self.streams[partition],
            ARCHIVE_GROUP,
            self.consumer,
            min_idle_time=ARCHIVE_IDLE_MS,
            count=count,
        )
        return [_record(partition, i, f) for i, f in claimed[1] if f]

    async def _read_archive(
        self, partition: int, start: str, count: int
    ) -> tuple[list[LogRecord], list[bytes]]:
        """Up to `count` entries of the partition for the archive group, from `start`: their
        records, and apart the ids of entries deleted since they were delivered (`erase`),
        which only an acknowledgement takes out of the pending list (else a partition
        whose pending entries were all erased is read again and again, its new records
        never).

        Sent and parsed here on one node, as `read_new` does: redis-py's reply callbacks
        build a dict per record, which cost the archiving process about as much as writing
        the record to Parquet (an archive batch is up to `ARCHIVE_BATCH` records).
        """
        stream = self.streams[partition]
        if self.store.cluster:
            reply = await self.client.xreadgroup(
                ARCHIVE_GROUP, self.consumer, {stream: start}, count=count
            )
            entries = reply[0][1] if reply else []
        else:
            command: list[str | int] = ["XREADGROUP", "GROUP", ARCHIVE_GROUP, self.consumer]
            command += ["COUNT", count, "STREAMS", stream, start]
            (reply,) = await self.store._send([command])
            # a map of streams under RESP3 (redis-py's default here), pairs under RESP2
            streams = reply.values() if isinstance(reply, dict) else [e for _, e in reply or []]
            entries = [entry for found in streams for entry in found]
        read = _record if self.store.cluster else _flat_record
        return [read(partition, i, f) for i, f in entries if f], [i for i, f in entries if not f]

    @_unavailable
    async def archive_done(self, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        by_partition = _by_partition([r.position for r in records])
        # packed by hiredis, not through redis-py's pipeline: tens of thousands of ids
        await self.store._send(
            [
                ("XACK", self.streams[partition], ARCHIVE_GROUP, *ids)
                for partition, ids in by_partition.items()
            ]
        )
        for partition in by_partition:
            await self._trim(partition)

    async def _trim(self, partition: int) -> None:
        """Forget what is archived and applied: below the oldest pending or in-flight id."""
        stream = self.streams[partition]
        floor: list[str] = []
        groups = [ARCHIVE_GROUP, APPLY_GROUP] if self.workers else [ARCHIVE_GROUP]
        for group in await self.client.xinfo_groups(stream):
            if _text(group["name"]) in groups:
                floor.append(_next_id(_text(group["last-delivered-id"])))
        for group in groups:
            pending = await self.client.xpending(stream, group)
            if pending["pending"]:
                floor.append(_text(pending["min"]))
        oldest = await self.client.zrange(self.inflight[partition], 0, 0)
        if oldest:
            floor.append(_text(oldest[0]))
        if floor:
            # limit=0: no cap on entries dropped per call (the default, 100 times a node, leaves
            # a burst's archived records in memory)
            await self.client.xtrim(
                stream, minid=min(floor, key=_id_key), approximate=True, limit=0
            )

    @_unavailable
    async def erase(self, user_id: str) -> int:
        """XDEL the user's entries (in the user's partition) and forget them in flight.

        It reads the partition, which holds only records not yet archived or applied
        (normally seconds' worth), in pages of 1,000. XDEL hides an entry at once; Redis
        frees its bytes when the stream node holding it is trimmed away (after the next
        archive pass), and the AOF keeps the original command until it is rewritten.
        """
        doomed_total = 0
        for partition in {self.partition_of(user_id), *range(self.partitions)}:
            doomed: list[bytes] = []
            stream, start = self.streams[partition], "-"
            while True:
                page = await self.client.xrange(stream, start, "+", count=1000)
                for id_, fields in page:
                    if fields.get(b"k") == b"event" and _belongs(fields, user_id):
                        doomed.append(id_)
                if len(page) < 1000:
                    break
                start = "(" + page[-1][0].decode()
            for chunk in range(0, len(doomed), 1000):
                ids = doomed[chunk : chunk + 1000]
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.xdel(stream, *ids)
                    pipe.zrem(self.inflight[partition], *ids)
                    await pipe.execute()
            doomed_total += len(doomed)
        return doomed_total

    async def close(self) -> None:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _split(position: str) -> tuple[int, str]:
    partition, _, id_ = position.partition("/")
    return int(partition), id_


def _by_partition(positions: Sequence[str]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = defaultdict(list)
    for position in positions:
        partition, id_ = _split(position)
        grouped[partition].append(id_)
    return grouped


def _belongs(fields: dict[bytes, bytes], user_id: str) -> bool:
    if fields[b"u"].decode() == user_id:
        return True
    body = orjson.loads(fields[b"d"])
    return bool(body.get("user_id") == user_id or body.get("anonymous_id") == user_id)


def _record(partition: int, id_: bytes, fields: dict[bytes, bytes]) -> LogRecord:
    kind = cast(RecordKind, fields[b"k"].decode())
    return LogRecord(
        kind=kind,
        key=fields[b"u"].decode(),
        body=fields[b"d"],
        position=f"{partition}/{id_.decode()}",
    )


def _flat_record(partition: int, id_: bytes, fields: list[bytes]) -> LogRecord:
    """`_record` of an entry as the server sends it: its fields and values alternating.

    `_APPEND` writes the fields in one order, so they are read by place: the dict a
    record would otherwise build cost half of what reading it does (any other layout
    still goes through one).
    """
    if len(fields) == 6 and fields[0] == b"k" and fields[2] == b"u" and fields[4] == b"d":
        kind = cast(RecordKind, fields[1].decode())
        return LogRecord(kind, fields[3].decode(), fields[5], f"{partition}/{id_.decode()}")
    return _record(partition, id_, dict(zip(fields[::2], fields[1::2], strict=True)))


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(stream_id: str) -> str:
    ms, seq = _id_key(stream_id)
    return f"{ms}-{seq + 1}"
