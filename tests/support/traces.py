"""Look for a string everywhere relevo keeps data: store, log, snapshot and archive."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import redis

from relevo.engine import Engine
from relevo.store.memory import MemoryStore


def store_traces(engine: Engine, needle: str, redis_client: redis.Redis | None) -> list[str]:
    """Keys, or keys whose values, mention `needle` (every key of the store)."""
    if isinstance(engine.store, MemoryStore):
        return ["memory store"] if needle.encode() in engine.store.dump() else []
    assert redis_client is not None
    found = []
    prefix = engine.settings.redis_prefix + ":"
    for key in redis_client.scan_iter(match=prefix + "*", count=1000):
        if needle.encode() in key or needle.encode() in _value(redis_client, key):
            found.append(key.decode())
    return found


def _value(client: redis.Redis, key: bytes) -> bytes:
    kind = client.type(key).decode()
    if kind == "stream":  # XDEL'd entries linger in the node until it is trimmed: read it
        return repr(client.xrange(key)).encode()
    return client.dump(key) or b""


def file_traces(directory: Path, needle: str) -> list[str]:
    """Files under `directory` whose bytes, or (for Parquet) whose decoded rows, mention it."""
    return [
        str(path)
        for path in sorted(p for p in directory.rglob("*") if p.is_file())
        if _mentions(path, needle)
    ]


def _mentions(path: Path, needle: str) -> bool:
    if needle.encode() in path.read_bytes() or needle in str(path):
        return True
    return path.suffix == ".parquet" and needle in repr(pq.read_table(path).to_pylist())
