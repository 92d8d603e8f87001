"""The store: a small set of state primitives that every backend implements.

Like Metarank's feature store, relevo keeps state in a handful of primitives, each
specified once by a contract suite (`tests/contracts/`) that runs against every
backend:

- **key-value** with an optional TTL (catalog items, settings);
- **counter** and **periodic counter** (counts in time buckets, for windowed sums);
- **bounded list** (newest first, trimmed on every push);
- **map** (fields of one key, with per-field increments);
- **sorted set** (members ordered by a score: indexes, timers);
- **decayed sorted set**: members whose scores decay exponentially in event time,
  bounded to the highest `max_len` (live co-visitation, trending items);
- **stream**: an append-only sequence of messages with unique ids (a message appended
  twice is stored once) read from a cursor (the rules' outbox);
- **token bucket**: an atomic take-or-refuse of request tokens (per-key rate limits
  that hold across API processes);
- **document**: a versioned value written by compare-and-set together with a set of
  *marks* (event ids already applied to it). Profiles are documents: the marks make
  applying an event idempotent, and the version makes concurrent writers safe.

Keys are plain strings; a backend may prefix them. Keys that belong to one user
carry a hash tag (see `relevo.store.keys`) so that Redis Cluster keeps them on one slot.
Primitives kept in two Redis keys (streams, decayed sets) derive the second from the
first (``<key>:seen``, ``<key>:at``): on a cluster their key must carry a hash tag.
Every method is a coroutine and batch-shaped where the hot path needs it, so that
a network backend can answer a whole batch in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from relevo.features.dictionaries import Dictionaries


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """A message of a stream: its cursor `position`, its unique `id`, its `body`."""

    position: str
    id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class MapIncr:
    """Add `increments` to integer fields of the map `key` (as `Store.map_incr`)."""

    key: str
    increments: Mapping[str, int]
    ttl_ms: int | None = None


# Not frozen, unlike the other records here: made per user (documents) or per key (decayed
# adds) for every applied batch, where a frozen dataclass's `__init__` (each field set
# through `object.__setattr__`) cost three times a plain one's. Never changed once made.
@dataclass(slots=True)
class DecayedAdd:
    """Add `weights` to members of the decayed sorted set `key`, as of event time `at_ms`."""

    key: str
    weights: Mapping[str, float]
    at_ms: int


@dataclass(slots=True)  # not frozen: see `DecayedAdd`
class DecayedGroup:
    """The arguments of one `Store.decayed_add`, for `Store.decayed_add_groups`."""

    adds: Sequence[DecayedAdd]
    half_life_ms: int
    max_len: int
    ttl_ms: int | None = None


@dataclass(slots=True)  # not frozen: see `DecayedAdd` (a decision makes a dozen)
class DecayedRead:
    """Read the `limit` highest members of the decayed sorted set `key`."""

    key: str
    half_life_ms: int
    limit: int


@dataclass(frozen=True, slots=True)
class StoredTop:
    """A decayed set's highest members with their scores as stored, as of the set's
    `landmark_ms` (None: no such key), best first (`Store.decayed_top_stored`).

    Why keep them as stored: `decayed` turns them into what `Store.decayed_top` would
    answer at any time, by the same product of the same numbers, so a reader may keep the
    top of a set that every request reads alike (trending) and decay it per request,
    with the answers of a fresh read (`relevo.live.shared`).
    """

    members: list[tuple[str, float]]
    landmark_ms: int | None

    def decayed(self, now_ms: int, half_life_ms: int) -> list[tuple[str, float]]:
        """The members with their scores decayed to `now_ms` (as `Store.decayed_top`)."""
        if self.landmark_ms is None:
            return []
        factor = 2.0 ** (-(now_ms - self.landmark_ms) / half_life_ms)
        return [(member, score * factor) for member, score in self.members]


#: A decayed set stores scores as of a *landmark* time; adding at `at_ms` scales the
#: weight by ``2 ** ((at_ms - landmark) / half_life)`` (forward decay, Cormode et al.
#: 2009), so every member decays alike without being rewritten. When that factor would
#: pass ``2 ** DECAY_REBASE_EXPONENT`` the scores are rescaled to a new landmark first
#: (one pass over at most `max_len` members), so numbers stay far from overflow.
DECAY_REBASE_EXPONENT = 32


@dataclass(slots=True)  # not frozen: see `DecayedAdd`
class DocRead:
    """Read a document and learn which of `marks` it already carries."""

    key: str
    marks_key: str
    marks: Sequence[bytes] = ()


@dataclass(slots=True)  # not frozen: see `DecayedAdd`
class Doc:
    """A document as read: version 0 and no value when it doesn't exist."""

    version: int
    value: bytes | None
    marked: list[bool] = field(default_factory=list)
    current_layout: bool = False
    """The store found the document and its marks in its current layout (or found
    none), and says so: pass it on as `DocWrite.current_layout`. Redis answers for a
    read that asked for marks (else it did not look at the marks of earlier layouts)."""


@dataclass(slots=True)  # not frozen: see `DecayedAdd`
class DocWrite:
    """Replace a document if it is still at `expected_version`, adding `marks` atomically.

    Marks are remembered for `marks_horizon_ms` after `now_ms`; the document expires
    `ttl_ms` after its last write (no expiry when None). A mark is at most 255 bytes
    (event marks are 8).
    """

    key: str
    marks_key: str
    expected_version: int
    value: bytes
    now_ms: int
    marks: Sequence[bytes] = ()
    ttl_ms: int | None = None
    marks_horizon_ms: int = 7 * 86_400_000
    current_layout: bool = False
    """`Doc.current_layout` of the read this write follows: the store may then skip
    looking for earlier layouts to convert (Redis: a leaner script, and a first write is
    one ``SET NX``). Whatever changed since the read is still caught by the version."""


@dataclass(frozen=True, slots=True)
class MarksSweep:
    """What one round of `Store.sweep_marks` did, and where the next one starts."""

    cursor: str
    """Pass to the next round; ``"0"`` when this round ended the pass."""
    documents: int
    """Documents (or their marks) looked at."""
    swept: int
    """Documents that lost marks."""
    freed_bytes: int
    """Bytes of marks dropped (Redis: of the document strings)."""


@dataclass(frozen=True, slots=True)
class BucketGrant:
    """The answer of a token bucket: allowed or not, what is left, when to come back."""

    allowed: bool
    remaining: int
    """Whole tokens left after this take."""
    retry_after_ms: int
    """0 when allowed; else how long until `cost` tokens are there again."""


@dataclass(slots=True)
class KindUsage:
    """Keys of one kind (see `relevo.store.keys.key_kind`) and what they occupy."""

    keys: int = 0
    bytes: int = 0
    """Exact for the `sampled` keys measured, extrapolated from their mean for the rest."""
    sampled: int = 0
    without_ttl: int = 0

    @property
    def exact(self) -> bool:
        return self.sampled >= self.keys


@dataclass(slots=True)
class StoreUsage:
    """What a store holds, by kind of key, and the memory its server reports."""

    backend: str
    kinds: dict[str, KindUsage] = field(default_factory=dict)
    memory_bytes: int | None = None
    """Redis: ``INFO memory`` used_memory summed over the masters; embedded: None."""
    memory_source: str = ""
    nodes: int = 1
    sample_per_kind: int = 0
    measure: str = ""
    """How `KindUsage.bytes` is measured (``MEMORY USAGE``, pickled size)."""


class Store(Protocol):
    """What relevo needs from a state backend."""

    backend: str
    dictionaries: Dictionaries
    """The profile dictionaries this process knows (`relevo.features.dictionaries`):
    `docs_read` loads the ones its documents name before answering, so they decode."""

    async def ping(self) -> None:
        """Raise `relevo.errors.Unavailable` when the backend can't be reached."""
        ...

    async def close(self) -> None: ...

    # -- key-value ----------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, values: Mapping[str, bytes], ttl_ms: int | None = None) -> None: ...

    async def write_many(
        self,
        values: Mapping[str, bytes],
        ttl_ms: int | None = None,
        increments: Sequence[MapIncr] = (),
    ) -> None:
        """`set_many(values, ttl_ms)` and a `map_incr` per entry of `increments`, in one
        round trip: what a decision records (its document and its counters).

        Why: each round trip (and each command of a pipeline) costs the API process far
        more than the server's work for it. The writes are independent, as separate calls
        would be: a connection lost midway may leave some of them undone.
        """
        ...

    async def delete(self, keys: Sequence[str]) -> int:
        """Delete keys of any kind; return how many existed."""
        ...

    async def lease(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take (or extend) an expiring lease on `key` for `owner`; False if another holds it.

        One process at a time does a job (delivering a webhook) while any can take over
        when the holder dies: the lease simply expires.
        """
        ...

    async def release(self, key: str, owner: str) -> bool:
        """End `owner`'s lease on `key` now (False if it is not theirs)."""
        ...

    async def ttl_ms(self, key: str) -> int | None:
        """Milliseconds left before `key` expires; None when it has no expiry or doesn't exist."""
        ...

    # -- counters -----------------------------------------------------------------------
    async def incr(self, key: str, by: int = 1) -> int: ...

    async def counter(self, key: str) -> int:
        """The counter's value; 0 when it doesn't exist."""
        ...

    async def periodic_add(
        self, entries: Sequence[tuple[str, int, int]], bucket_ms: int, keep_ms: int
    ) -> None:
        """Add `by` to the bucket of `ts_ms` for each `(key, ts_ms, by)`.

        Buckets older than `keep_ms` before the newest bucket written are dropped.
        """
        ...

    async def periodic_sum(self, key: str, from_ms: int, to_ms: int, bucket_ms: int) -> int:
        """Sum of the buckets that overlap ``[from_ms, to_ms]`` (whole buckets)."""
        ...

    # -- bounded list -------------------------------------------------------------------
    async def list_push(self, key: str, values: Sequence[bytes], max_len: int) -> None:
        """Push values in order (the last one becomes the head) and keep the newest `max_len`."""
        ...

    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[bytes]:
        """Elements from the head (newest) on, inclusive bounds like Redis LRANGE."""
        ...

    async def list_remove(self, key: str, values: Sequence[bytes]) -> int:
        """Remove every element equal to one of `values`; return how many were removed."""
        ...

    # -- map ----------------------------------------------------------------------------
    async def map_set(self, key: str, fields: Mapping[str, bytes]) -> None: ...

    async def map_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]: ...

    async def map_all(self, key: str) -> dict[str, bytes]: ...

    async def map_all_many(self, keys: Sequence[str]) -> list[dict[str, bytes]]:
        """`map_all` of each key, in one round trip (a missing key gives {}).

        Why: a worker reads the experiment assignments of every purchasing user of a
        batch; one round trip each cost more than the reads themselves.
        """
        ...

    async def map_incr(
        self, key: str, increments: Mapping[str, int], ttl_ms: int | None = None
    ) -> dict[str, int]:
        """Add to integer fields (missing ones start at 0); return their new values.

        With `ttl_ms`, the whole map expires that long after this write.
        """
        ...

    async def map_add(
        self, key: str, fields: Mapping[str, bytes], ttl_ms: int | None = None
    ) -> list[bool]:
        """Set the fields that are absent, keep the others; True for each field set now.

        Counting something once per user (first exposure, first purchase) needs exactly
        this answer, atomically. With `ttl_ms`, the map expires that long after this write.
        """
        ...

    async def map_delete(self, key: str, fields: Sequence[str]) -> int: ...

    # -- sorted set ---------------------------------------------------------------------
    async def zadd(self, key: str, members: Mapping[str, float]) -> None: ...

    async def zrange_by_score(
        self, key: str, low: float, high: float, offset: int = 0, limit: int | None = None
    ) -> list[tuple[str, float]]:
        """Members with ``low <= score <= high``, ascending by (score, member)."""
        ...

    async def zrem(self, key: str, members: Sequence[str]) -> int: ...

    async def zcard(self, key: str) -> int: ...

    # -- decayed sorted set -------------------------------------------------------------
    async def decayed_add(
        self,
        adds: Sequence[DecayedAdd],
        half_life_ms: int,
        max_len: int,
        ttl_ms: int | None = None,
    ) -> None:
        """Add decayed weights; each key keeps its `max_len` highest-scored members.

        A weight `w` added at time `t` is worth ``w * 2 ** (-(now - t) / half_life_ms)``
        at time `now` (a late event adds what is left of its weight). Members beyond
        `max_len` are dropped lowest first (ties: the lower member name first). With
        `ttl_ms`, a key expires that long after its last add. A key must always be used
        with the same half-life. Keys of one call may live on different Cluster slots:
        each key is updated atomically on its own.
        """
        ...

    async def decayed_add_groups(self, groups: Sequence[DecayedGroup]) -> None:
        """`decayed_add` of each group (its own half-life, bound and expiry), in one
        round trip: an applied batch updates co-visitation and two kinds of trending."""
        ...

    async def decayed_remove(self, removals: Mapping[str, Sequence[str]]) -> None:
        """Remove members from decayed sets (key → members), in one round trip: an item
        leaving the attribute postings of the tokens it no longer carries. The other
        members keep their scores; a missing key or member is no error."""
        ...

    async def decayed_top(
        self, reads: Sequence[DecayedRead], now_ms: int
    ) -> list[list[tuple[str, float]]]:
        """Per read, the key's `limit` highest members with scores decayed to `now_ms`.

        Ordered by score, then member name, both descending; a missing key gives [].
        One round trip for all reads (a request reads co-visitation and trending at once).
        """
        ...

    async def decayed_top_stored(self, reads: Sequence[DecayedRead]) -> list[StoredTop]:
        """Per read, the key's `limit` highest members with their scores as stored, and
        the set's landmark: ``top.decayed(now_ms, read.half_life_ms)`` of each is what
        `decayed_top` of the same reads answers at `now_ms` while the sets do not change.
        One round trip for all reads."""
        ...

    # -- stream -------------------------------------------------------------------------
    async def stream_add(
        self,
        key: str,
        messages: Sequence[tuple[str, bytes]],
        now_ms: int,
        dedupe_ms: int,
        max_len: int,
    ) -> list[str | None]:
        """Append `(id, body)` messages in order; an id seen within `dedupe_ms` is skipped.

        Returns each message's position, or None for a duplicate. The stream keeps about
        the newest `max_len` messages.
        """
        ...

    async def stream_read(self, key: str, after: str | None, limit: int) -> list[StreamEntry]:
        """Messages after position `after` (from the start when None), oldest first."""
        ...

    # -- token bucket -------------------------------------------------------------------
    async def take_tokens(
        self, key: str, cost: int, rate_per_s: int, burst: int, now_ms: int
    ) -> BucketGrant:
        """Take `cost` tokens from the bucket `key`, atomically, or refuse and take nothing.

        A bucket holds at most `burst` tokens and refills at `rate_per_s` tokens per
        second; a bucket never seen is full. Arithmetic is integral (thousandths of a
        token, milliseconds), so every backend answers exactly the same. Time comes from
        the caller (`now_ms`) and never runs backwards for a bucket. A bucket expires
        when it would be full again (which is the same as not existing).
        `cost` must be between 1 and `burst`.
        """
        ...

    # -- scanning -----------------------------------------------------------------------
    async def keys_with_prefix(self, prefix: str) -> list[str]:
        """Every live key that starts with `prefix`, in no particular order.

        It walks the whole key space on Redis (SCAN): meant for rare work like
        erasure, never for the request path.
        """
        ...

    async def sample_keys(self, prefix: str, suffix: str, limit: int) -> list[str]:
        """Up to `limit` live keys that start with `prefix` and end with `suffix`, in no
        particular order (on Redis, SCAN's: its hash table's, an unbiased sample).

        The scan stops once it has them: a sample of profiles costs what it finds, not
        the key space (training a profile dictionary, `relevo.features.site_dictionaries`).
        """
        ...

    async def usage(self, sample_per_kind: int = 100) -> StoreUsage:
        """Keys, bytes and keys without expiry per kind of key (`relevo.store.keys.key_kind`).

        Every key is counted and its TTL checked; bytes are measured for at most
        `sample_per_kind` keys of each kind (a uniform sample) and extrapolated to the
        rest. It walks the whole key space: an operator's tool, never the request path.
        """
        ...

    # -- documents ----------------------------------------------------------------------
    async def docs_read(self, reads: Sequence[DocRead]) -> list[Doc]:
        """The documents; the profile dictionaries they name that `dictionaries` did not
        know are loaded from the store first (one more round trip, once per process)."""
        ...

    async def docs_write(self, writes: Sequence[DocWrite]) -> list[bool]:
        """Compare-and-set each document; True where it was written."""
        ...

    async def sweep_marks(
        self, match: str, cursor: str, before_ms: int, count: int = 1000
    ) -> MarksSweep:
        """One round of a pass that forgets the marks recorded before `before_ms` by the
        documents whose keys match the glob `match`; documents, versions and TTLs stay.

        Why: a write forgets its document's marks past the horizon, so an idle user's
        last marks would stay until the document expires (on Redis, a fifth of a user's
        bytes). A pass starts at cursor ``"0"`` and ends when a round answers ``"0"``;
        a round looks at about `count` keys. A mark recorded before `before_ms` is
        forgotten (on Redis, which keeps seconds, once the whole second it was
        recorded in is), never one recorded at or after it. Documents of the earlier
        Redis layouts (marks under their own key) are left to their next write.
        """
        ...
