"""Forgetting idle documents' marks on Redis, server side (`RedisStore.sweep_marks`).

A format-2 document holds its marks as records in time order (see `DOC_FORMAT` in
`relevo.store.redis`); a write drops the head records past the horizon, so an idle
user's last records used to stay until the document expired (90 days). A round
SCANs the documents (every master of a cluster, one after the other) and runs
`SWEEP_MARKS` over each page of keys: no document travels to Python.

Why the version stays as it is, and why exactly-once still holds with a concurrent
writer (`_DOC_CAS`, or `_DOC_UPDATE` after a read that found the current layout):
the version guards the *value*, which the sweep leaves byte for byte; the marks are
merged by the write's script from what is stored when it runs, never from what the
writer read (a first write, a SET NX, has nothing to merge: it fails if a document
came meanwhile, and a sweep only rewrites documents there). So a writer that read
version v before a sweep still writes (no needless conflict): its script sees the
swept marks, drops nothing more than a sweep would, and appends its own. What the
writer decided from its read can differ only on a record past the horizon, which it
saw as applied: a longer memory, as a write that drops it anyway a moment later. No
record at or after the cutoff is ever dropped, so an event retried within the horizon
is still found. Clocks: the cutoff comes from the sweeping process's clock and the
records' seconds from the writers' clocks; a skew between them shifts the horizon as
much as it does between two writers of one document (keep processes on NTP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relevo.store.base import MarksSweep

if TYPE_CHECKING:
    from relevo.store.redis import RedisStore

FIRST_KEPT = """
-- Where the marks records of `s` from `i` to `last` stop being stale: records are in
-- time order, so the stale ones are a head; a record is stale when its second is before
-- `cutoff` (ms). What stays is kept as it is.
local function first_kept(s, i, last, cutoff)
  while i <= last do
    local n, at, size = string.byte(s, i), 0, 0
    if n == 0 then
      at = struct.unpack('>I4', s, i + 3)
      size = 7 + string.byte(s, i + 1) * string.byte(s, i + 2)
    else
      at = struct.unpack('>I4', s, i + 1 + n)
      size = n + 5
    end
    if at * 1000 >= cutoff then break end
    i = i + size
  end
  return i
end
"""
"""A Lua function the scripts that read marks records share (prepended to each): the
record layout is `DOC_FORMAT`'s (`relevo.store.redis`)."""

# KEYS: documents. ARGV: cutoff ms. Drops the head records whose whole second is before
# the cutoff (a record's second is its write's time rounded down: a record of second s
# may hold marks of up to s + 999 ms). SET ... KEEPTTL: the document keeps its expiry.
# Anything but a format-2 string (format 1, a hash, gone since the SCAN) is left alone:
# GET through pcall (an error for a hash, false for a key gone), not TYPE then GET: one
# command less per key looked at (84 k TYPE calls in a sweep during `bench.load`'s
# ingestion phase).
# Returns {documents looked at, documents swept, bytes freed}.
SWEEP_MARKS = (
    FIRST_KEPT
    + """
local cutoff = tonumber(ARGV[1])
local seen, swept, freed = 0, 0, 0
for _, key in ipairs(KEYS) do
  local stored = redis.pcall('GET', key)
  if type(stored) == 'string' and #stored >= 9 and string.byte(stored, 1) == 2 then
    seen = seen + 1
    local last = 9 + struct.unpack('>I4', stored, 6)
    local i = first_kept(stored, 10, last, cutoff - 999)  -- whole seconds before the cutoff
    if i > 10 then
      redis.call('SET', key, string.sub(stored, 1, 5) .. struct.pack('>I4', last - i + 1)
        .. string.sub(stored, i), 'KEEPTTL')
      swept = swept + 1
      freed = freed + i - 10
    end
  end
end
return {seen, swept, freed}
"""
)

SCAN_PAGE = 500
"""Keys SCAN walks at once (its COUNT), and so at most the keys of one script: a script
over 500 profiles of ~560 bytes took 2.2 ms of Redis when it rewrote them all, 0.8 ms
when it had nothing to drop (`INFO commandstats`; a SCAN page 0.3-0.4 ms)."""


async def sweep_round(
    store: RedisStore, pattern: str, cursor: str, before_ms: int, count: int
) -> MarksSweep:
    """One round of `RedisStore.sweep_marks` over the keys matching `pattern` (prefix
    included).

    The cursor is SCAN's; on a cluster ``<master>:<cursor>``, the masters taken in the
    order of their names (a pass that meets a changed topology may miss or repeat a
    few documents: the next pass takes them).
    """
    node, position = _parse(cursor)
    nodes = sorted(store.client.get_primaries(), key=lambda n: n.name) if store.cluster else []
    seen = swept = freed = looked = 0
    while looked < count:
        page = min(SCAN_PAGE, count - looked)
        if not store.cluster:
            position, keys = await store.client.scan(
                cursor=position, match=pattern, count=page, _type="string"
            )
        elif node < len(nodes):
            found, keys = await store.client.scan(
                cursor=position, match=pattern, count=page, _type="string",
                target_nodes=nodes[node],
            )  # fmt: skip
            position = int(next(iter(found.values())))
        else:  # fewer masters than when the pass began
            return MarksSweep("0", seen, swept, freed)
        looked += page  # what SCAN walks, matches or not: a round's work is bounded
        for found_seen, found_swept, found_freed in await _run(store, keys, before_ms):
            seen, swept, freed = seen + found_seen, swept + found_swept, freed + found_freed
        if position == 0:
            if not store.cluster or node + 1 >= len(nodes):
                return MarksSweep("0", seen, swept, freed)
            node += 1
    next_cursor = f"{node}:{position}" if store.cluster else str(position)
    return MarksSweep(next_cursor, seen, swept, freed)


async def _run(store: RedisStore, keys: list[bytes], before_ms: int) -> list[list[int]]:
    """`SWEEP_MARKS` over `keys`: one script on one node; on a cluster one per slot (a
    script's keys must share a slot), run concurrently."""
    if not keys:
        return []
    groups = [keys]
    if store.cluster:
        by_slot: dict[int, list[bytes]] = {}
        for key in keys:
            by_slot.setdefault(store.client.keyslot(key), []).append(key)
        groups = list(by_slot.values())
    return await store.run_scripts([(store.sweep_script, group, [before_ms]) for group in groups])


def _parse(cursor: str) -> tuple[int, int]:
    """(master, SCAN cursor) of a cursor (one node: master 0)."""
    node, _, position = cursor.rpartition(":")
    return int(node or 0), int(position)
