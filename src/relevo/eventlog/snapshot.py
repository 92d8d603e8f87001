"""Snapshots of the embedded store, so a restart replays only the log's tail.

A snapshot is the store's content plus the log position it reflects, written to a
temporary file, fsynced and renamed over the previous one: a crash leaves either
the old or the new snapshot, never a torn one.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from relevo.store.memory import MemoryStore

_FORMAT = 1


def save(path: Path, store: MemoryStore, position: int) -> None:
    blob = pickle.dumps((_FORMAT, position, store.dump()), protocol=pickle.HIGHEST_PROTOCOL)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path, store: MemoryStore) -> int:
    """Fill `store` from the snapshot at `path`; return its log position (0 when none)."""
    if not path.exists():
        return 0
    version, position, content = pickle.loads(path.read_bytes())
    if version != _FORMAT:
        raise ValueError(f"{path} has snapshot format {version}; this relevo reads {_FORMAT}")
    store.load(content)
    return int(position)
