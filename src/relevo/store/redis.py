"""The Redis backend: the same primitives on Redis (single node today, Cluster-ready keys).

Every key is prefixed (``relevo:`` by default). Hot paths are pipelined so a batch
costs one round trip; compare-and-set of documents runs as a Lua script so the
version check, the write, the marks and the TTLs change together or not at all.
Connection failures surface as `relevo.errors.Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import struct
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping, Sequence
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relevo.errors import InvalidInput, Unavailable
from relevo.features import site_dictionaries
from relevo.features.dictionaries import Dictionaries
from relevo.store import bucket
from relevo.store.base import (
    DECAY_REBASE_EXPONENT,
    BucketGrant,
    DecayedAdd,
    DecayedGroup,
    DecayedRead,
    Doc,
    DocRead,
    DocWrite,
    MapIncr,
    MarksSweep,
    StoredTop,
    StoreUsage,
    StreamEntry,
)
from relevo.store.redis_marks import FIRST_KEPT, SWEEP_MARKS, sweep_round
from relevo.store.redis_wire import Wire, endpoint_of
from relevo.store.usage import UsageTally

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""`RELEVO_STORE=redis+cluster://host:port` connects to a Redis Cluster through any node."""

Argument = str | bytes | int | float
"""What `_pack` writes (as redis-py would: a float as its ``repr``)."""

P = ParamSpec("P")
T = TypeVar("T")

# A document is one string that also holds its marks (format 2): a format byte, the
# version (uint32, big-endian), the length of the marks (uint32), the marks, the value.
# Why together: each Redis key costs about 190 bytes of its own (its entry, name and
# expiry, measured with `used_memory`), as much as a profile's 15 marks and more than
# half its document. Marks are a run of records in time order, a record being the
# marks of one write that have the same length: 0 (1 byte), how many (1 byte), their
# length (1 byte), the second they were written (uint32), the marks end to end: 7 bytes
# per write and 8 per event. Each write drops the records older than the horizon from
# the head; an idle user's are dropped by a sweep (`relevo.store.redis_marks`, run by
# `relevo.marks_sweep`), or at the latest when the document expires (a longer memory
# than the horizon, never a shorter one: exactly-once holds).
#
# Earlier layouts are read, and converted on the next write: a format-1 string (no
# marks) or a hash ``{v, d}`` for the document, with its marks under the marks key as
# a string of records (one per mark: length, never 0, the mark, the second; or groups
# as above) or a sorted set; the write folds them in and deletes the marks key.
DOC_FORMAT = 2
_DOC_HEADER = struct.Struct(">BI")
_DOC_MARKS = struct.Struct(">I")
_FIRST_HEADER = _DOC_HEADER.pack(DOC_FORMAT, 1)
"""Format and version of a document's first write."""
_MARK_TIME = struct.Struct(">I")

# KEYS: document, marks key of the earlier layouts. ARGV: expected version, value, ttl ms
# (0 = none), now ms, marks horizon ms, marks...
_DOC_CAS = (
    FIRST_KEPT
    + """
local version, marks = 0, ''
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'string' then
  local stored = redis.call('GET', KEYS[1])
  local format, found = struct.unpack('>BI4', stored)
  version = found
  if format == 2 then
    local length = struct.unpack('>I4', stored, 6)
    marks = string.sub(stored, 10, 9 + length)
  end
elseif kind == 'hash' then
  version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
end
if version ~= tonumber(ARGV[1]) then return 0 end
local now, horizon = tonumber(ARGV[4]), tonumber(ARGV[5])
local cutoff = now - horizon
local earlier = redis.call('TYPE', KEYS[2])['ok']
if earlier == 'string' then
  marks = redis.call('GET', KEYS[2]) .. marks
  redis.call('DEL', KEYS[2])
elseif earlier == 'zset' then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], cutoff, '+inf', 'WITHSCORES')
  local records = {}
  for i = 1, #old, 2 do
    records[#records + 1] = string.char(#old[i]) .. old[i]
      .. struct.pack('>I4', math.floor(tonumber(old[i + 1]) / 1000))
  end
  marks = table.concat(records) .. marks
  redis.call('DEL', KEYS[2])
end
local kept = {string.sub(marks, first_kept(marks, 1, #marks, cutoff))}
local second = struct.pack('>I4', math.floor(now / 1000))
local groups, lengths = {}, {}
for j = 6, #ARGV do
  local n = #ARGV[j]
  if not groups[n] then groups[n] = {}; lengths[#lengths + 1] = n end
  table.insert(groups[n], ARGV[j])
end
for _, n in ipairs(lengths) do
  local group = groups[n]
  for first = 1, #group, 255 do
    local last = math.min(first + 254, #group)
    kept[#kept + 1] = string.char(0, last - first + 1, n) .. second
      .. table.concat(group, '', first, last)
  end
end
marks = table.concat(kept)
local doc = struct.pack('>BI4I4', 2, version + 1, #marks) .. marks .. ARGV[2]
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('SET', KEYS[1], doc, 'PX', ttl) else redis.call('SET', KEYS[1], doc) end
return 1
"""
)

# The common write (`DocWrite.current_layout`: the read found a format-2 string and no
# marks key of an earlier layout), for many documents at once: for each, what `_DOC_CAS`
# does to such a document, without looking for earlier layouts, the write's records
# built by `_mark_records`. Why: `_DOC_CAS` cost Redis ~109 k instructions per update
# (callgrind), this ~60 k: no TYPE calls (~5 k each), the marks grouped in Python, and
# what running a script at all costs (~24 k) shared by up to `UPDATES_PER_SCRIPT`
# documents. Anything else met (the document gone, a format-1
# string or a hash: an earlier writer came between) is a conflict: the applier reads
# again, and that read sends the write to `_DOC_CAS`.
# KEYS: documents (one slot). ARGV: per document, expected version, ttl ms (0 = none),
# cutoff ms (now - horizon), the write's marks records, value. Returns 1 or 0 each.
_DOC_UPDATE = (
    FIRST_KEPT
    + """
local function update(key, a)
  local stored = redis.pcall('GET', key)
  if type(stored) ~= 'string' or string.byte(stored, 1) ~= 2 then return 0 end
  local version, length = struct.unpack('>I4I4', stored, 2)
  if version ~= tonumber(ARGV[a + 1]) then return 0 end
  local last = 9 + length
  local kept = string.sub(stored, first_kept(stored, 10, last, tonumber(ARGV[a + 3])), last)
  local doc = struct.pack('>BI4I4', 2, version + 1, #kept + #ARGV[a + 4])
    .. kept .. ARGV[a + 4] .. ARGV[a + 5]
  if ARGV[a + 2] ~= '0' then redis.call('SET', key, doc, 'PX', ARGV[a + 2])
  else redis.call('SET', key, doc) end
  return 1
end
local done = {}
for j = 1, #KEYS do done[j] = update(KEYS[j], (j - 1) * 5) end
return done
"""
)

UPDATES_PER_SCRIPT = 50
"""Documents one `_DOC_UPDATE` writes at most: the ~24 k instructions of running a script
shared by 50 (~0.5 k each), and Redis busy ~1 ms at most with one script."""

# KEYS: bucket hash. ARGV: buckets kept behind the newest, then (bucket, by) pairs, added
# in order. The field "newest" remembers the newest bucket, so pruning only touches
# buckets that just fell out of the window (or scans once after a long pause). Why all of
# a key's buckets in one call: a batch of events spread over an hour made one call per
# (event type, minute), nearly one per event (most of the EVALSHA and HGET calls of an
# ingestion); "newest" is read once per call and written when it changes.
_PERIODIC_ADD = """
local kept = tonumber(ARGV[1])
local written = tonumber(redis.call('HGET', KEYS[1], 'newest'))
local newest = written or tonumber(ARGV[2])
for i = 2, #ARGV, 2 do
  local bucket = tonumber(ARGV[i])
  if bucket >= newest - kept then
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
    if bucket > newest then
      if bucket - newest > kept + 1 then
        for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
          local b = tonumber(field)
          if b and b < bucket - kept then redis.call('HDEL', KEYS[1], field) end
        end
      else
        for b = newest - kept, bucket - kept - 1 do
          redis.call('HDEL', KEYS[1], string.format('%d', b))
        end
      end
      newest = bucket
    end
    -- Written as each bucket is added (the hash's fields in the order one call per
    -- bucket left them), but not again unchanged.
    if newest ~= written then
      redis.call('HSET', KEYS[1], 'newest', string.format('%d', newest))
      written = newest
    end
  end
end
return 1
"""

# The token bucket of `relevo.store.bucket`, atomically. KEYS: bucket hash.
# ARGV: cost (milli-tokens), rate (tokens/s = milli-tokens/ms), capacity (milli-tokens), now ms.
_TAKE_TOKENS = """
local cost, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local capacity, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = capacity, now
if state[1] then
  tokens, at = tonumber(state[1]), tonumber(state[2])
  if now > at then
    tokens = math.min(capacity, tokens + (now - at) * rate)
    at = now
  end
end
local allowed, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%d', tokens), 'at', string.format('%d', at))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((capacity - tokens) / rate)))
return {allowed, math.floor(tokens / 1000), retry}
"""

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "\\*?[]"})


# KEYS: stream, seen-ids zset (same hash tag). ARGV: now ms, dedupe ms, max len, then
# (id, body) pairs. Returns one position per message, or false for a duplicate.
_STREAM_ADD = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', now - tonumber(ARGV[2])))
local positions = {}
for i = 4, #ARGV, 2 do
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[i]) == 1 then
    positions[#positions + 1] = redis.call(
      'XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'i', ARGV[i], 'b', ARGV[i + 1])
  else
    positions[#positions + 1] = false
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return positions
"""


# KEYS: per decayed zset, the zset and its landmark (all on one slot). ARGV: half-life
# ms, max len, ttl ms (0 = none), rebase exponent, members per command, then per zset:
# at ms, how many members, their weights (`_pack_weights`: one string), the members.
# See DECAY_REBASE_EXPONENT. Why several zsets per call and a ZMSCORE and a ZADD per
# chunk of members, not a call per zset and a ZINCRBY per member (6.8 per event with
# returning users): fewer scripts and commands to run and propagate. The new scores are
# the same doubles (ZINCRBY adds old + increment as the script does; numbers cross
# between Lua and Redis in 17 digits). What is left is mostly the listpack insertions
# themselves (docs/performance.md, "Redis's share, live models"). The landmark is written
# only when it changes; the TTLs are renewed on every add, as before.
_DECAYED_ADD = """
local half_life = tonumber(ARGV[1])
local max_len = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local rebase = tonumber(ARGV[4])
local chunk = tonumber(ARGV[5])
local a = 6
for k = 1, #KEYS, 2 do
  local zset, mark = KEYS[k], KEYS[k + 1]
  local at = tonumber(ARGV[a])
  local count = tonumber(ARGV[a + 1])
  local weights = ARGV[a + 2]
  local stored = redis.call('GET', mark)
  local landmark = tonumber(stored or ARGV[a])
  local exponent = (at - landmark) / half_life
  if exponent > rebase then
    local factor = 2 ^ (-exponent)
    local all = redis.call('ZRANGE', zset, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      redis.call('ZADD', zset, tonumber(all[i + 1]) * factor, all[i])
    end
    landmark = at
    exponent = 0
    stored = false
  end
  local scale = 2 ^ exponent
  for first = 1, count, chunk do
    local last = math.min(first + chunk - 1, count)
    local members = {}
    for i = first, last do members[#members + 1] = ARGV[a + 2 + i] end
    local old = redis.call('ZMSCORE', zset, unpack(members))
    local scored = {}
    for j = 1, #members do
      local added = struct.unpack('<d', weights, 8 * (first + j - 2) + 1) * scale
      scored[2 * j - 1] = old[j] and tonumber(old[j]) + added or added
      scored[2 * j] = members[j]
    end
    redis.call('ZADD', zset, unpack(scored))
  end
  redis.call('ZREMRANGEBYRANK', zset, 0, -(max_len + 1))
  if not stored then redis.call('SET', mark, string.format('%d', landmark)) end
  if ttl > 0 then
    redis.call('PEXPIRE', zset, ttl)
    redis.call('PEXPIRE', mark, ttl)
  end
  a = a + 3 + count
end
return 1
"""

DECAYED_MEMBERS_PER_SCRIPT = 200
"""Members one `_DECAYED_ADD` call adds at most (~5 us each in Redis: ~1 ms, as
`UPDATES_PER_SCRIPT`), unless one zset alone has more: a zset is never split over
calls, whose trims in between could drop a member a later call would have raised."""
DECAYED_MEMBERS_PER_COMMAND = 200
"""Members per ZMSCORE and ZADD in `_DECAYED_ADD`: their arguments go through Lua's
stack, which holds 8,000 at most."""


# KEYS: lease. ARGV: owner, ttl ms.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


_STREAM_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")


# KEYS: lease. ARGV: owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _pack_weights(weights: Collection[float]) -> bytes:
    """The weights of one decayed zset as `_DECAYED_ADD` reads them (``struct.unpack('<d',
    ...)`` in Redis's Lua): the 8 bytes of each double, little-endian, in order.

    Exact by construction, and cheaper on both sides than text: a weight written as
    ``"%.17g"`` (17 significant digits name every double) cost about 4,600 instructions
    to format (the batch's weights are decayed sums, dtoa's slow case) and a length
    header to pack, and Redis a ``strtod``; this is one call and one argument per zset.

    >>> _pack_weights([1.0, 0.5]).hex()
    '000000000000f03f000000000000e03f'
    """
    return struct.pack(f"<{len(weights)}d", *weights)


def _pack(commands: Sequence[Sequence[Argument]]) -> bytes:
    """Commands in the Redis protocol (arrays of bulk strings), as one buffer.

    Packed by hiredis's C packer (the one redis-py itself uses when hiredis is there),
    not argument by argument in Python: a worker packs a profile write and a read for
    each user it applies events to, which cost it 40 k instructions a user in Python.

    >>> _pack([("GET", "k"), ("EXPIRE", b"k", 10)])
    b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n*3\\r\\n$6\\r\\nEXPIRE\\r\\n$1\\r\\nk\\r\\n$2\\r\\n10\\r\\n'
    """
    return b"".join([_pack_command(tuple(command)) for command in commands])


_pack_command: Callable[[tuple[Argument, ...]], bytes] = hiredis.pack_command  # type: ignore[assignment]
"""(hiredis's stub types the command as a tuple of one item)"""


try:  # redis-py's internals (8.x): `_replies` checks they are there, else takes its path
    from redis._parsers import hiredis as _redis_hiredis
except ImportError:  # pragma: no cover - another redis-py
    _redis_hiredis = None  # type: ignore[assignment]
_HIREDIS_PARSER: Any = getattr(_redis_hiredis, "_AsyncHiredisParser", None)
NOT_ENOUGH_DATA: Any = getattr(_redis_hiredis, "NOT_ENOUGH_DATA", object())


def _fast_reader(parser: Any) -> bool:
    """Whether `parser` is redis-py's hiredis parser with the internals read here."""
    return (
        _HIREDIS_PARSER is not None
        and type(parser) is _HIREDIS_PARSER
        and getattr(parser, "_reader", None) is not None
        and hasattr(parser, "_hiredis_PushNotificationType")
    )


def _writable(connection: Any) -> bool:
    """Whether `connection` can take a write straight on its stream writer, as redis-py's
    ``send_packed_command`` would write it after its checks: connected, open, no health
    check (PING) due.

    Why: ``send_packed_command`` writes under ``asyncio.wait_for``, which on Python 3.11
    runs the write as a task of its own (a task, a timer and two more turns of the event
    loop per round trip, and a decision makes about six). Here the write shares the
    round trip's one timer; failures end as redis-py's would (the connection dropped,
    `Unavailable` from `_unavailable`). A connection without these internals takes
    redis-py's path.
    """
    writer = getattr(connection, "_writer", None)
    if writer is None or getattr(connection, "_reader", None) is None:
        return False
    if writer.transport.is_closing():
        return False
    interval = getattr(connection, "health_check_interval", None)
    if interval is None:
        return False
    return not interval or asyncio.get_running_loop().time() <= connection.next_health_check


async def _replies(connection: Any, count: int) -> list[Any]:
    """The next `count` replies on `connection`, errors as `ResponseError` values.

    With redis-py's hiredis parser, straight from its reader: ``read_response`` costs
    about 5 µs of Python per reply around the parsing (a timeout context, the peer's
    name formatted for a possible error message, protocol and push checks), and a
    worker reads three replies per event (``bench.worker_cpu --profile worker``).
    Push messages (none on these connections, which never subscribe) go to the
    parser's handler, as redis-py does; any other parser, or a redis-py whose parser
    lacks these internals, takes redis-py's path (re-check them when upgrading it).
    """
    parser: Any = getattr(connection, "_parser", None)
    if _fast_reader(parser):
        return await _hiredis_replies(parser, count)
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await connection.read_response(timeout=math.inf))
        except ResponseError as error:  # read whole: the next reply follows
            replies.append(error)
    return replies


async def _hiredis_replies(parser: Any, count: int) -> list[Any]:
    reader, push = parser._reader, parser._hiredis_PushNotificationType
    replies: list[Any] = []
    while len(replies) < count:
        reply = reader.gets()
        if reply is NOT_ENOUGH_DATA:
            await parser.read_from_socket()
        elif push is not None and isinstance(reply, push):
            await parser.handle_push_response(reply)
        elif isinstance(reply, RedisConnectionError):  # as redis-py: e.g. still LOADING
            raise reply
        else:
            replies.append(reply)
    return replies


MEMBER_NAMES = 50_000
"""Decoded members of decayed sets kept (`_decayed`): beyond, the table starts over."""
_member_names: dict[bytes, str] = {}


def _decayed(reply: Sequence[Any], factor: float) -> list[tuple[str, float]]:
    """(member, score times `factor`) of a ``WITHSCORES`` reply, whatever its shape: pairs
    under RESP3 (scores as doubles), flat under RESP2 (scores as strings).

    Members are looked up in a table of those decoded before (`_member_names`): the same
    few thousand items come back in every decision's live-model read (a few hundred
    members each), and a lookup costs less than decoding each one again, and gives a
    string whose hash is already known to the blend's and the catalog's dicts (5.46 M ->
    5.37 M instructions per decision, ``bench.decide_cpu --callgrind``).

    >>> _decayed([[b"a", 2.0]], 0.5), _decayed([b"a", b"2"], 0.5), _decayed([], 0.5)
    ([('a', 1.0)], [('a', 1.0)], [])
    """
    names = _member_names
    try:
        if reply and isinstance(reply[0], list | tuple):
            if type(reply[0][1]) is float:  # (no conversion per member: it runs for hundreds)
                return [(names[member], score * factor) for member, score in reply]
            return [(names[member], float(score) * factor) for member, score in reply]
        flat = iter(reply)
        return [
            (names[member], float(score) * factor) for member, score in zip(flat, flat, strict=True)
        ]
    except KeyError:
        _learn_members(reply)
        return _decayed(reply, factor)


def _learn_members(reply: Sequence[Any]) -> None:
    """Decode the members of `reply` not in `_member_names` yet, and keep them there."""
    pairs = isinstance(reply[0], list | tuple)
    members = [entry[0] for entry in reply] if pairs else reply[::2]
    known = _member_names
    if len(known) + len(members) > MEMBER_NAMES:
        known.clear()
    known.update({member: member.decode() for member in members if member not in known})


def _unavailable(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn connection failures into `Unavailable`, the one error callers handle."""

    @wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            store = args[0]
            if isinstance(store, RedisStore) and store.cluster and not store.client_ready:
                await store.ready()
            return await method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            raise Unavailable(f"redis is unreachable: {error}") from error

    return wrapper


CLUSTER_CONCURRENCY = 64
"""Scripts of one batch in flight at once on a cluster (each node's pool stays small)."""


class RedisStore:
    """State in Redis. `url` is a redis:// URL; `prefix` namespaces every key."""

    backend = "redis"

    def __init__(self, url: str, prefix: str = "relevo") -> None:
        self.url = url
        self.prefix = prefix + ":"
        self.cluster = url.startswith(CLUSTER_SCHEMES)
        self.socket_timeout_s = 5.0
        options: dict[str, Any] = {
            "decode_responses": False,
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": 2,
        }
        if self.cluster:
            self.client: Any = RedisCluster.from_url(
                "redis" + url[url.index("://") :], max_connections=256, **options
            )
        else:
            self.client = aioredis.Redis.from_url(url, health_check_interval=10, **options)
        self.client_ready = not self.cluster
        endpoint = None if self.cluster else endpoint_of(self.client.connection_pool)
        #: One node: the pipelined connection of `_round_trip` (None: the pool's).
        self.wire = (
            None
            if endpoint is None
            else Wire(
                endpoint,
                timeout=self.socket_timeout_s,
                connect_timeout=options["socket_connect_timeout"],
            )
        )
        self.dictionaries = Dictionaries()
        self._in_flight = asyncio.Semaphore(CLUSTER_CONCURRENCY)
        self._doc_cas = self.client.register_script(_DOC_CAS)
        self._doc_update = self.client.register_script(_DOC_UPDATE)
        self._periodic_add = self.client.register_script(_PERIODIC_ADD)
        self._stream_add = self.client.register_script(_STREAM_ADD)
        self._lease = self.client.register_script(_LEASE)
        self._release = self.client.register_script(_RELEASE)
        self._take_tokens = self.client.register_script(_TAKE_TOKENS)
        self._decayed_add = self.client.register_script(_DECAYED_ADD)
        self.sweep_script = self.client.register_script(SWEEP_MARKS)

    def k(self, key: str) -> str:
        return self.prefix + key

    async def _send(
        self,
        commands: Sequence[Sequence[Argument]],
        *,
        raise_on_error: bool = True,
        exclusive: bool = False,
    ) -> list[Any]:
        """Run `commands` in one round trip; their replies as the server gave them (no
        response callbacks: see `_decayed`), errors as `ResponseError` values unless
        `raise_on_error`.

        Why: redis-py's pipeline costs the API process ~15 µs per command on top of the
        round trip (each argument encoded through several checks, a timer armed per reply,
        response callbacks), more than the server's work for it; a decision sends a dozen
        commands. On one node the commands are written in one go and their replies read
        under one timeout (`_round_trip`); a cluster's pipeline routes them per slot.
        `exclusive`: on a connection of their own, for a blocking command (``XREADGROUP
        ... BLOCK``), which on the shared `wire` would hold up every other caller.
        """
        if self.cluster:
            async with self.client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                routed: list[Any] = await pipe.execute(raise_on_error=raise_on_error)
            return routed
        replies = await self._round_trip(commands, exclusive=exclusive)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        return replies

    async def _round_trip(
        self, commands: Sequence[Sequence[Argument]], *, exclusive: bool = False
    ) -> list[Any]:
        """Write `commands` at once and read one reply each: on the shared pipelined
        connection (`relevo.store.redis_wire`), or, `exclusive` or without one, on a
        connection of redis-py's pool."""
        if self.wire is not None and not exclusive:
            return await self.wire.call(_pack(commands), len(commands))
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            packed = _pack(commands)
            async with asyncio.timeout(self.socket_timeout_s):  # one timer for all of it
                if _writable(connection):
                    writer = connection._writer
                    writer.write(packed)
                    await writer.drain()
                else:
                    await connection.send_packed_command(packed)
                replies = await _replies(connection, len(commands))
        except BaseException:
            # replies may be left unread on the socket: never hand it to the next caller
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)
        return replies

    async def _transaction(self, commands: Sequence[Sequence[Argument]]) -> list[Any]:
        """`commands` in ``MULTI``/``EXEC``, in one round trip; their replies (``EXEC``'s).

        On one node through `_send` (the shared connection writes one caller's commands
        together, so nothing comes between ``MULTI`` and ``EXEC``), not redis-py's
        transactional pipeline, which cost a worker ~0.2 ms of Python per call: with the
        live traffic's small batches, the site-wide counts alone (`map_incr`,
        `list_push`) were a fifth of a worker's CPU per batch. A cluster's pipeline
        routes the transaction to the node of its (one) key.
        """
        if self.cluster:
            async with self.client.pipeline(transaction=True) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                done: list[Any] = await pipe.execute()
            return done
        replies = await self._send([("MULTI",), *commands, ("EXEC",)])
        executed: list[Any] = replies[-1]
        for reply in executed:
            if isinstance(reply, ResponseError):
                raise reply
        return executed

    async def run_scripts(
        self,
        calls: Sequence[tuple[Any, Sequence[str | bytes], list[Any]]],
        plain: Sequence[Sequence[Argument]] = (),
    ) -> list[Any]:
        """Run Lua scripts in one round trip; on a cluster, whose pipelines refuse
        scripts, concurrently (each goes to the node of its keys). The `plain` commands
        go along (in that round trip; on a cluster in one pipeline): their replies
        follow the scripts'.

        On one node, ``EVALSHA`` commands written by `_round_trip`, not redis-py's
        pipeline: that asked the server whether the scripts exist (``SCRIPT EXISTS``, a
        round trip) on every call and encoded each argument through several checks, a
        third of what a worker spent per event outside the feature code
        (``bench.worker_cpu --callgrind``). A script the server does not know (first use,
        or its script cache was emptied by a restart or ``SCRIPT FLUSH``) fails with
        ``NOSCRIPT`` without running: it is loaded and those calls alone run again, so
        each call runs exactly once.
        """
        if self.cluster:
            jobs = [self._bounded(s, k, a) for s, k, a in calls]
            if plain:
                jobs.append(self._send(plain))
            ran = await asyncio.gather(*jobs)
            return [*ran[: len(calls)], *(ran[-1] if plain else ())]
        commands: list[Sequence[Argument]] = [
            ("EVALSHA", script.sha, len(script_keys), *script_keys, *args)
            for script, script_keys, args in calls
        ]
        commands += plain
        replies = await self._round_trip(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
                await self.client.script_load(script.script)
            again = await self._round_trip([commands[i] for i in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def _bounded(self, script: Any, keys: Sequence[str | bytes], args: list[Any]) -> Any:
        """One script of a batch, at most `CLUSTER_CONCURRENCY` at once: a batch of
        1,000 users must not ask the client for 1,000 connections (MaxConnectionsError)."""
        async with self._in_flight:
            return await script(keys=keys, args=args)

    async def ready(self) -> None:
        """Learn the cluster's slots once, before any command runs.

        Why: redis-py's async cluster client (8.x) discovers the topology lazily, and
        when dozens of commands race through that first discovery some of them meet a
        connection it has just reset ("'NoneType' object has no attribute
        'writelines'"). Discovering it first, alone, avoids the race.
        """
        if not self.client_ready:
            await self.client.initialize()
            self.client_ready = True

    @_unavailable
    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        if self.wire is not None:
            await self.wire.close()
        await self.client.aclose()

    # -- key-value ----------------------------------------------------------------------
    @_unavailable
    async def get(self, key: str) -> bytes | None:
        if self.cluster:
            value: bytes | None = await self.client.get(self.k(key))
            return value
        (found,) = await self._send([("GET", self.k(key))])
        return found  # type: ignore[no-any-return]

    @_unavailable
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        named = [self.k(key) for key in keys]
        if self.cluster:  # keys on several slots
            cluster_values: list[bytes | None] = await self.client.mget_nonatomic(named)
            return cluster_values
        (values,) = await self._send([("MGET", *named)])
        return values  # type: ignore[no-any-return]

    @_unavailable
    async def set_many(self, values: Mapping[str, bytes], ttl_ms: int | None = None) -> None:
        if not values:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for key, value in values.items():
                pipe.set(self.k(key), value, px=ttl_ms)
            await pipe.execute()

    @_unavailable
    async def write_many(
        self,
        values: Mapping[str, bytes],
        ttl_ms: int | None = None,
        increments: Sequence[MapIncr] = (),
    ) -> None:
        if not values and not increments:
            return
        # Not a transaction: MULTI and EXEC would cost two more replies to parse, and on a
        # cluster the keys are on several slots.
        expiry = () if ttl_ms is None else ("PX", ttl_ms)
        commands: list[tuple[str | bytes | int, ...]] = [
            ("SET", self.k(key), value, *expiry) for key, value in values.items()
        ]
        for write in increments:
            named = self.k(write.key)
            commands += [("HINCRBY", named, name, by) for name, by in write.increments.items()]
            if write.ttl_ms is not None and write.increments:
                commands.append(("PEXPIRE", named, write.ttl_ms))
        await self._send(commands)

    @_unavailable
    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        removed: int = await self.client.delete(*[self.k(key) for key in keys])
        return removed

    @_unavailable
    async def lease(self, key: str, owner: str, ttl_ms: int) -> bool:
        (taken,) = await self.run_scripts([(self._lease, [self.k(key)], [owner, ttl_ms])])
        return bool(taken)

    @_unavailable
    async def release(self, key: str, owner: str) -> bool:
        (released,) = await self.run_scripts([(self._release, [self.k(key)], [owner])])
        return bool(released)

    @_unavailable
    async def ttl_ms(self, key: str) -> int | None:
        left: int = await self.client.pttl(self.k(key))
        return None if left < 0 else left

    # -- counters -----------------------------------------------------------------------
    @_unavailable
    async def incr(self, key: str, by: int = 1) -> int:
        value: int = await self.client.incrby(self.k(key), by)
        return value

    @_unavailable
    async def counter(self, key: str) -> int:
        value = await self.client.get(self.k(key))
        return 0 if value is None else int(value)

    @_unavailable
    async def periodic_add(
        self, entries: Sequence[tuple[str, int, int]], bucket_ms: int, keep_ms: int
    ) -> None:
        if not entries:
            return
        buckets: dict[str, list[int]] = {}  # by key, in order: one call per key
        for key, ts_ms, by in entries:
            buckets.setdefault(key, []).extend((ts_ms // bucket_ms, by))
        kept = keep_ms // bucket_ms
        await self.run_scripts(
            [(self._periodic_add, [self.k(key)], [kept, *adds]) for key, adds in buckets.items()]
        )

    @_unavailable
    async def periodic_sum(self, key: str, from_ms: int, to_ms: int, bucket_ms: int) -> int:
        buckets = list(range(from_ms // bucket_ms, to_ms // bucket_ms + 1))
        if not buckets:
            return 0
        values = await self.client.hmget(self.k(key), buckets)
        return sum(int(value) for value in values if value is not None)

    # -- bounded list -------------------------------------------------------------------
    @_unavailable
    async def list_push(self, key: str, values: Sequence[bytes], max_len: int) -> None:
        if not values:
            return
        await self._transaction(
            [("LPUSH", self.k(key), *values), ("LTRIM", self.k(key), 0, max_len - 1)]
        )

    @_unavailable
    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[bytes]:
        values: list[bytes] = await self.client.lrange(self.k(key), start, stop)
        return values

    @_unavailable
    async def list_remove(self, key: str, values: Sequence[bytes]) -> int:
        if not values:
            return 0
        key = self.k(key)
        removed = await self._transaction(
            [("LREM", key, 0, value) for value in dict.fromkeys(values)]
        )
        return int(sum(removed))

    # -- map ----------------------------------------------------------------------------
    @_unavailable
    async def map_set(self, key: str, fields: Mapping[str, bytes]) -> None:
        if fields:
            await self.client.hset(self.k(key), mapping=dict(fields))

    @_unavailable
    async def map_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        if not fields:
            return []
        values: list[bytes | None] = await self.client.hmget(self.k(key), list(fields))
        return values

    @_unavailable
    async def map_all(self, key: str) -> dict[str, bytes]:
        found: dict[bytes, bytes] = await self.client.hgetall(self.k(key))
        return {name.decode(): value for name, value in found.items()}

    @_unavailable
    async def map_all_many(self, keys: Sequence[str]) -> list[dict[str, bytes]]:
        if not keys:
            return []
        replies = await self._send([("HGETALL", self.k(key)) for key in keys])
        return [_fields(reply) for reply in replies]

    @_unavailable
    async def map_incr(
        self, key: str, increments: Mapping[str, int], ttl_ms: int | None = None
    ) -> dict[str, int]:
        if not increments:
            return {}
        name = self.k(key)
        commands: list[Sequence[Argument]] = [
            ("HINCRBY", name, field, by) for field, by in increments.items()
        ]
        if ttl_ms is not None:
            commands.append(("PEXPIRE", name, ttl_ms))
        replies = await self._transaction(commands)
        return {field: int(value) for field, value in zip(increments, replies, strict=False)}

    @_unavailable
    async def map_add(
        self, key: str, fields: Mapping[str, bytes], ttl_ms: int | None = None
    ) -> list[bool]:
        if not fields:
            return []
        async with self.client.pipeline(transaction=True) as pipe:
            for name, value in fields.items():
                pipe.hsetnx(self.k(key), name, value)
            if ttl_ms is not None:
                pipe.pexpire(self.k(key), ttl_ms)
            replies = await pipe.execute()
        return [bool(reply) for reply in replies[: len(fields)]]

    @_unavailable
    async def map_delete(self, key: str, fields: Sequence[str]) -> int:
        if not fields:
            return 0
        removed: int = await self.client.hdel(self.k(key), *fields)
        return removed

    # -- sorted set ---------------------------------------------------------------------
    @_unavailable
    async def zadd(self, key: str, members: Mapping[str, float]) -> None:
        if members:
            await self.client.zadd(self.k(key), dict(members))

    @_unavailable
    async def zrange_by_score(
        self, key: str, low: float, high: float, offset: int = 0, limit: int | None = None
    ) -> list[tuple[str, float]]:
        found = await self.client.zrangebyscore(
            self.k(key),
            low,
            high,
            start=offset if limit is not None or offset else None,
            num=limit if limit is not None else (-1 if offset else None),
            withscores=True,
        )
        return [(member.decode(), float(score)) for member, score in found]

    @_unavailable
    async def zrem(self, key: str, members: Sequence[str]) -> int:
        if not members:
            return 0
        removed: int = await self.client.zrem(self.k(key), *members)
        return removed

    @_unavailable
    async def zcard(self, key: str) -> int:
        count: int = await self.client.zcard(self.k(key))
        return count

    # -- decayed sorted set -------------------------------------------------------------
    # The landmark lives in a second key, `<key>:at`: a caller that wants Cluster support
    # puts a hash tag in `key`, which the landmark key then shares.
    @_unavailable
    async def decayed_add(
        self,
        adds: Sequence[DecayedAdd],
        half_life_ms: int,
        max_len: int,
        ttl_ms: int | None = None,
    ) -> None:
        await self.decayed_add_groups([DecayedGroup(adds, half_life_ms, max_len, ttl_ms)])

    @_unavailable
    async def decayed_add_groups(self, groups: Sequence[DecayedGroup]) -> None:
        calls = [
            call
            for group in groups
            if group.adds
            for call in self._decayed_calls(
                group.adds, group.half_life_ms, group.max_len, group.ttl_ms
            )
        ]
        if calls:
            await self.run_scripts(calls)

    @_unavailable
    async def decayed_remove(self, removals: Mapping[str, Sequence[str]]) -> None:
        # (The landmark key stays: a later add to the set goes on from it. A set emptied
        # for good leaves it behind, a few bytes: postings, the only caller, never expire.)
        commands = [("ZREM", self.k(key), *members) for key, members in removals.items() if members]
        if commands:
            await self._send(commands)

    def _decayed_calls(
        self,
        adds: Sequence[DecayedAdd],
        half_life_ms: int,
        max_len: int,
        ttl_ms: int | None,
    ) -> list[tuple[Any, Sequence[str | bytes], list[Any]]]:
        """The `_decayed_add` script calls of one group: a call's keys share one slot on a
        cluster, and a call holds at most `DECAYED_MEMBERS_PER_SCRIPT` members."""
        header = [
            half_life_ms,
            max_len,
            ttl_ms or 0,
            DECAY_REBASE_EXPONENT,
            DECAYED_MEMBERS_PER_COMMAND,
        ]
        groups: dict[int, list[DecayedAdd]] = {}  # by slot on a cluster: a script's keys share one
        for add in adds:
            slot = self.client.keyslot(self.k(add.key)) if self.cluster else 0
            groups.setdefault(slot, []).append(add)
        calls: list[tuple[Any, Sequence[str | bytes], list[Any]]] = []
        for group in groups.values():
            script_keys: list[str | bytes] = []
            args: list[Any] = list(header)
            members = 0
            for add in group:
                if members and members + len(add.weights) > DECAYED_MEMBERS_PER_SCRIPT:
                    calls.append((self._decayed_add, script_keys, args))
                    script_keys, args, members = [], list(header), 0
                weights = add.weights
                script_keys += (self.k(add.key), self.k(add.key + ":at"))
                args += (add.at_ms, len(weights), _pack_weights(weights.values()), *weights)
                members += len(weights)
            calls.append((self._decayed_add, script_keys, args))
        return calls

    @_unavailable
    async def decayed_top(
        self, reads: Sequence[DecayedRead], now_ms: int
    ) -> list[list[tuple[str, float]]]:
        wanted = [read for read in reads if read.limit > 0]
        if not wanted:
            return [[] for _ in reads]
        tops, landmarks = await self._decayed_replies(wanted)
        found: list[list[tuple[str, float]]] = []
        for read in reads:
            if read.limit <= 0:
                found.append([])
                continue
            members, landmark = next(tops), next(landmarks)
            if landmark is None:
                found.append([])
                continue
            factor = 2.0 ** (-(now_ms - int(landmark)) / read.half_life_ms)
            found.append(_decayed(members, factor))
        return found

    @_unavailable
    async def decayed_top_stored(self, reads: Sequence[DecayedRead]) -> list[StoredTop]:
        wanted = [read for read in reads if read.limit > 0]
        if not wanted:
            return [StoredTop([], None) for _ in reads]
        tops, landmarks = await self._decayed_replies(wanted)
        found: list[StoredTop] = []
        for read in reads:
            if read.limit <= 0:
                found.append(StoredTop([], None))
                continue
            members, landmark = next(tops), next(landmarks)
            if landmark is None:
                found.append(StoredTop([], None))
            else:  # (a factor of 1.0 leaves each score as stored, exactly)
                found.append(StoredTop(_decayed(members, 1.0), int(landmark)))
        return found

    async def _decayed_replies(
        self, reads: Sequence[DecayedRead]
    ) -> tuple[Iterator[Any], Iterator[Any]]:
        """Each read's members with their stored scores, and each set's landmark (None
        when the set is missing), in one round trip."""
        commands: list[tuple[str | int, ...]] = [
            ("ZREVRANGE", self.k(read.key), 0, read.limit - 1, "WITHSCORES") for read in reads
        ]
        landmark_keys = [self.k(read.key + ":at") for read in reads]
        if self.cluster:  # the landmarks live on the slots of their sets
            replies = await self._send([*commands, *(("GET", key) for key in landmark_keys)])
            return iter(replies[: len(reads)]), iter(replies[len(reads) :])
        # all in one command
        replies = await self._send([*commands, ("MGET", *landmark_keys)])
        return iter(replies[:-1]), iter(replies[-1])

    # -- stream -------------------------------------------------------------------------
    @_unavailable
    async def stream_add(
        self,
        key: str,
        messages: Sequence[tuple[str, bytes]],
        now_ms: int,
        dedupe_ms: int,
        max_len: int,
    ) -> list[str | None]:
        if not messages:
            return []
        args: list[Any] = [now_ms, dedupe_ms, max_len]
        for message_id, body in messages:
            args.extend((message_id, body))
        (replies,) = await self.run_scripts(
            [(self._stream_add, [self.k(key), self.k(key + ":seen")], args)]
        )
        return [reply.decode() if reply else None for reply in replies]

    @_unavailable
    async def stream_read(self, key: str, after: str | None, limit: int) -> list[StreamEntry]:
        if after is not None and not _STREAM_ID.match(after):
            raise InvalidInput(f"{after!r} is not a cursor of this stream", field="after")
        start = "-" if after is None else "(" + after
        found = await self.client.xrange(self.k(key), min=start, max="+", count=limit)
        return [
            StreamEntry(position.decode(), fields[b"i"].decode(), fields[b"b"])
            for position, fields in found
        ]

    # -- token bucket -------------------------------------------------------------------
    @_unavailable
    async def take_tokens(
        self, key: str, cost: int, rate_per_s: int, burst: int, now_ms: int
    ) -> BucketGrant:
        bucket.check(cost, rate_per_s, burst)
        # through `run_scripts` (one EVALSHA on the shared connection), not the script
        # object's call through redis-py: every keyed request takes tokens
        ((allowed, remaining, retry),) = await self.run_scripts(
            [
                (
                    self._take_tokens,
                    [self.k(key)],
                    [cost * bucket.MILLI, rate_per_s, burst * bucket.MILLI, now_ms],
                )
            ]
        )
        return BucketGrant(bool(allowed), int(remaining), int(retry))

    # -- scanning -----------------------------------------------------------------------
    @_unavailable
    async def keys_with_prefix(self, prefix: str) -> list[str]:
        pattern = (self.k(prefix)).translate(_GLOB_SPECIAL) + "*"
        found = []
        async for key in self.client.scan_iter(match=pattern, count=1000):
            found.append(key.decode()[len(self.prefix) :])
        return found

    @_unavailable
    async def sample_keys(self, prefix: str, suffix: str, limit: int) -> list[str]:
        pattern = self.k(prefix).translate(_GLOB_SPECIAL) + "*" + suffix.translate(_GLOB_SPECIAL)
        found: list[str] = []
        if limit <= 0:
            return found
        async with contextlib.aclosing(self.client.scan_iter(match=pattern, count=1000)) as keys:
            async for name in keys:
                found.append(name.decode()[len(self.prefix) :])
                if len(found) >= limit:
                    break
        return found

    @_unavailable
    async def usage(self, sample_per_kind: int = 100) -> StoreUsage:
        tally = UsageTally(sample_per_kind)
        pattern = self.prefix.translate(_GLOB_SPECIAL) + "*"
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self._tally_ttls(tally, batch)
                batch = []
        await self._tally_ttls(tally, batch)
        sampled = tally.sampled_keys()
        sizes: dict[str, int] = {}
        for start in range(0, len(sampled), 1000):
            chunk = sampled[start : start + 1000]
            async with self.client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.memory_usage(self.k(key))
                replies = await pipe.execute()
            sizes.update((key, int(size)) for key, size in zip(chunk, replies, strict=True) if size)
        usage = tally.measured(sizes, self.backend)
        usage.measure = "MEMORY USAGE"
        if self.cluster:
            infos = await self.client.info("memory", target_nodes=RedisCluster.PRIMARIES)
            per_node = [info for info in infos.values() if isinstance(info, dict)]
        else:
            per_node = [await self.client.info("memory")]
        usage.nodes = len(per_node)
        usage.memory_bytes = sum(int(info["used_memory"]) for info in per_node)
        usage.memory_source = (
            f"INFO memory used_memory, {len(per_node)} master(s), every prefix on the server"
        )
        return usage

    async def _tally_ttls(self, tally: UsageTally, batch: list[bytes]) -> None:
        if not batch:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.pttl(key)
            ttls = await pipe.execute()
        # -2: expired between SCAN and PTTL (gone); -1: no expiry
        alive = [(key, ttl) for key, ttl in zip(batch, ttls, strict=True) if ttl != -2]
        tally.add(
            [key.decode()[len(self.prefix) :] for key, _ in alive],
            [ttl == -1 for _, ttl in alive],
        )

    # -- documents ----------------------------------------------------------------------
    @_unavailable
    async def docs_read(self, reads: Sequence[DocRead]) -> list[Doc]:
        if not reads:
            return []
        documents, earlier_marks = await self._documents_and_marks(reads)
        docs: list[Doc] = []
        older: list[int] = []  # documents or marks still in the earlier layout
        for read, stored, blob in zip(reads, documents, earlier_marks, strict=True):
            if isinstance(stored, ResponseError) or isinstance(blob, ResponseError):
                older.append(len(docs))
                docs.append(Doc(0, None, []))
                continue
            version, value, inside = parse_document(stored)
            # (absent or format 2, and no marks key: only a read of the marks looked)
            current = bool(read.marks) and blob is None and (stored is None or stored[0] == 2)
            docs.append(Doc(version, value, _marked((blob or b"") + inside, read.marks), current))
        if older:
            found = await self._docs_read_older([reads[i] for i in older])
            for index, doc in zip(older, found, strict=True):
                docs[index] = doc
        await site_dictionaries.learn(self, [doc.value for doc in docs])
        return docs

    async def _documents_and_marks(self, reads: Sequence[DocRead]) -> tuple[list[Any], list[Any]]:
        """Each read's stored document, and the value of its marks key of the earlier
        layouts (None when absent; b"" when the read asks about no marks), as replies:
        errors (another type of key: an earlier layout) as `ResponseError` values.

        On one node the marks keys are first asked about all at once (``EXISTS`` of them
        all, in the round trip of the documents' ``GET``s): nothing writes them any more,
        so nearly always none exists, and the ``GET`` of each (a command per user read)
        is sent only when some do, in a second round trip. Redis's instructions per
        document read went 7.4 k → 5.2 k (6.1 k → 4.0 k when absent: a new user;
        `bench.redis_doc_writes`). A cluster (whose ``EXISTS`` cannot span slots) reads
        each.
        """
        marked = [self.k(read.marks_key) for read in reads if read.marks]
        if marked and not self.cluster:
            commands: list[tuple[str, ...]] = [("GET", self.k(read.key)) for read in reads]
            commands.append(("EXISTS", *marked))
            *documents, existing = await self._send(commands, raise_on_error=False)
            if existing == 0:
                return documents, [None if read.marks else b"" for read in reads]
        commands = []
        for read in reads:
            commands.append(("GET", self.k(read.key)))
            if read.marks:
                commands.append(("GET", self.k(read.marks_key)))
        replies = iter(await self._send(commands, raise_on_error=False))
        documents, blobs = [], []
        for read in reads:
            documents.append(next(replies))
            blobs.append(next(replies) if read.marks else b"")
        return documents, blobs

    async def _docs_read_older(self, reads: Sequence[DocRead]) -> list[Doc]:
        """Read documents of which one key (document or marks) is in the earlier layout."""
        async with self.client.pipeline(transaction=False) as pipe:
            for read in reads:
                pipe.type(self.k(read.key))
                pipe.type(self.k(read.marks_key))
            types = [_text(kind) for kind in await pipe.execute()]
        async with self.client.pipeline(transaction=False) as pipe:
            for number, read in enumerate(reads):
                if types[2 * number] == "hash":
                    pipe.hmget(self.k(read.key), ["v", "d"])
                else:
                    pipe.get(self.k(read.key))
                if read.marks:
                    if types[2 * number + 1] == "zset":
                        pipe.zmscore(self.k(read.marks_key), list(read.marks))
                    else:
                        pipe.get(self.k(read.marks_key))
            replies = iter(await pipe.execute())
        docs = []
        for number, read in enumerate(reads):
            stored = next(replies)
            inside = b""
            if types[2 * number] == "hash":
                version, value = (0 if stored[0] is None else int(stored[0])), stored[1]
            else:
                version, value, inside = parse_document(stored)
            marked: list[bool] = []
            if read.marks:
                found = next(replies)
                if types[2 * number + 1] == "zset":
                    marked = [score is not None for score in found]
                    marked = [
                        a or b for a, b in zip(marked, _marked(inside, read.marks), strict=True)
                    ]
                else:
                    marked = _marked((found or b"") + inside, read.marks)
            docs.append(Doc(version, value, marked))
        return docs

    @_unavailable
    async def docs_write(self, writes: Sequence[DocWrite]) -> list[bool]:
        if not writes:
            return []
        if any(len(mark) > 255 for write in writes for mark in write.marks):
            raise InvalidInput("a document mark is at most 255 bytes", field="marks")
        # Three ways, by what the read found (`DocWrite.current_layout`): nothing, so a
        # first write is one SET NX (a document written since makes it fail: a conflict,
        # as the version check would); a format-2 document, updated by `_DOC_UPDATE`;
        # anything else (an earlier layout to convert, or unknown) by `_DOC_CAS`. The
        # bytes stored are the same whichever way (tested).
        calls: list[tuple[Any, Sequence[str | bytes], list[Any]]] = []
        called: list[list[int]] = []  # the writes each call judges
        creates: list[tuple[Argument, ...]] = []
        created: list[int] = []
        updates: dict[int, list[int]] = {}  # by slot on a cluster (a script's keys share one)
        for index, write in enumerate(writes):
            if not write.current_layout:
                keys = [self.k(write.key), self.k(write.marks_key)]
                args = [write.expected_version, write.value, write.ttl_ms or 0, write.now_ms]
                calls.append((self._doc_cas, keys, [*args, write.marks_horizon_ms, *write.marks]))
                called.append([index])
            elif write.expected_version == 0:
                records = _mark_records(write.marks, write.now_ms)
                doc = b"".join((_FIRST_HEADER, _DOC_MARKS.pack(len(records)), records, write.value))
                ttl = max(write.ttl_ms or 0, 0)  # as `_DOC_CAS`: none unless positive
                creates.append(("SET", self.k(write.key), doc, "NX", *(("PX", ttl) if ttl else ())))
                created.append(index)
            else:
                slot = self.client.keyslot(self.k(write.key)) if self.cluster else 0
                updates.setdefault(slot, []).append(index)
        for group in updates.values():
            for start in range(0, len(group), UPDATES_PER_SCRIPT):
                chunk = group[start : start + UPDATES_PER_SCRIPT]
                args = []
                for index in chunk:
                    write = writes[index]
                    args += (
                        write.expected_version,
                        max(write.ttl_ms or 0, 0),
                        write.now_ms - write.marks_horizon_ms,
                        _mark_records(write.marks, write.now_ms),
                        write.value,
                    )
                calls.append((self._doc_update, [self.k(writes[i].key) for i in chunk], args))
                called.append(chunk)
        replies = await self.run_scripts(calls, creates)
        written = [False] * len(writes)
        for indexes, reply in zip(called, replies[: len(calls)], strict=True):
            for index, done in zip(
                indexes, reply if isinstance(reply, list) else [reply], strict=True
            ):
                written[index] = done == 1
        for index, reply in zip(created, replies[len(calls) :], strict=True):
            written[index] = bool(reply)  # OK (True through a cluster) or None
        return written

    @_unavailable
    async def sweep_marks(
        self, match: str, cursor: str, before_ms: int, count: int = 1000
    ) -> MarksSweep:
        pattern = self.prefix.translate(_GLOB_SPECIAL) + match
        return await sweep_round(self, pattern, cursor, before_ms, count)


def parse_document(stored: bytes | None) -> tuple[int, bytes | None, bytes]:
    """(version, value, marks) of a stored document string (see `DOC_FORMAT`);
    (0, None, no marks) when there is none."""
    if stored is None:
        return 0, None, b""
    layout, version = _DOC_HEADER.unpack_from(stored)
    if layout == 1:  # no marks inside: they are under the marks key
        return version, stored[_DOC_HEADER.size :], b""
    start = _DOC_HEADER.size + _DOC_MARKS.size
    (length,) = _DOC_MARKS.unpack_from(stored, _DOC_HEADER.size)
    return version, stored[start + length :], stored[start : start + length]


def _mark_records(marks: Sequence[bytes], now_ms: int) -> bytes:
    """The records of one write's marks, as `_DOC_CAS` appends them: one per mark length
    (lengths in the order they first come), of at most 255 marks, stamped with the
    write's second."""
    if not marks:
        return b""
    second = _MARK_TIME.pack(now_ms // 1000)
    if len(marks) == 1:  # most writes (a new user's first event): no grouping to do
        (mark,) = marks
        return b"".join((bytes((0, 1, len(mark))), second, mark))
    groups: dict[int, list[bytes]] = {}
    for mark in marks:
        groups.setdefault(len(mark), []).append(mark)
    parts: list[bytes] = []
    for length, group in groups.items():
        for first in range(0, len(group), 255):
            chunk = group[first : first + 255]
            parts += (bytes((0, len(chunk), length)), second, *chunk)
    return b"".join(parts)


def _marked(blob: bytes | None, marks: Sequence[bytes]) -> list[bool]:
    """Which of `marks` the marks string holds (see `DOC_FORMAT`)."""
    if not marks:
        return []
    found: set[bytes] = set()
    view = memoryview(blob or b"")
    position = 0
    while position < len(view):
        length = view[position]
        if length == 0:  # a group: count, length, second, the marks
            count, size = view[position + 1], view[position + 2]
            start = position + 3 + _MARK_TIME.size
            found.update(
                bytes(view[start + k * size : start + (k + 1) * size]) for k in range(count)
            )
            position = start + count * size
        else:  # one mark (earlier versions): length, mark, second
            found.add(bytes(view[position + 1 : position + 1 + length]))
            position += length + 1 + _MARK_TIME.size
    return [mark in found for mark in marks]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(reply: list[bytes] | dict[bytes, bytes]) -> dict[str, bytes]:
    """A raw ``HGETALL`` reply (flat name, value list; a dict through a cluster pipeline,
    whose reply callbacks pair them) as `map_all` answers it."""
    if isinstance(reply, dict):
        return {name.decode(): value for name, value in reply.items()}
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}
