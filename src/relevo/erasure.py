"""Erasure: remove every trace of a user, and say what was removed.

An `ErasureRegistry` holds *erasers*, one per subsystem that keeps per-user data. The
core registers its own (below and in `Engine`): the user's store keys, their entries
in site-wide feeds, their records in the event log, their rows in the Parquet archive.
Later subsystems (timers, experiment assignments, the outbox, model factors) plug in
with `engine.erasers.register(eraser)`; an eraser is anything with a `name` and an
``async erase(user_id) -> int`` that returns how many things it removed.

`Engine.erase` runs the registry between two commit groups, so no event of the user
is half-applied meanwhile. Events that arrive *after* the erasure are new data and
start a new profile. The receipt lists the counts per eraser and what is still pending
(archive rows are hidden from readers at once and physically removed by compaction).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from relevo.clock import Clock, to_iso
from relevo.eventlog.tombstones import add_tombstone
from relevo.store import keys
from relevo.store.base import Store

log = logging.getLogger(__name__)


class Eraser(Protocol):
    name: str

    async def erase(self, user_id: str) -> int:
        """Remove what this subsystem keeps of `user_id`; return how many things went."""
        ...


@dataclass(slots=True)
class Receipt:
    receipt_id: str
    user_id: str
    erased_at: str
    removed: dict[str, int] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "receipt_id": self.receipt_id,
            "user_id": self.user_id,
            "erased_at": self.erased_at,
            "removed": dict(self.removed),
            "pending": list(self.pending),
        }


@dataclass(slots=True)
class FunctionEraser:
    """An eraser from a coroutine function (handy for small subsystems and tests)."""

    name: str
    function: Callable[[str], Awaitable[int]]
    pending: str | None = None

    async def erase(self, user_id: str) -> int:
        return await self.function(user_id)


class ErasureRegistry:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._erasers: list[Eraser] = []

    def register(self, eraser: Eraser) -> None:
        if any(known.name == eraser.name for known in self._erasers):
            raise ValueError(f"an eraser named {eraser.name!r} is already registered")
        self._erasers.append(eraser)

    @property
    def names(self) -> list[str]:
        return [eraser.name for eraser in self._erasers]

    async def erase(self, user_id: str) -> Receipt:
        """Run every eraser, in registration order; a failure stops and propagates.

        Erasing is idempotent, so a failed erasure is simply asked for again.
        """
        receipt = Receipt(uuid.uuid4().hex, user_id, to_iso(self.clock.now_ms()))
        for eraser in self._erasers:
            receipt.removed[eraser.name] = await eraser.erase(user_id)
            pending = getattr(eraser, "pending", None)
            if isinstance(pending, str):
                receipt.pending.append(pending)
        # the log line names the receipt, never the user
        log.info("erasure %s: %s", receipt.receipt_id, receipt.removed)
        return receipt


def owns_key(user_id: str, key: str) -> bool:
    """Is `key` one of this user's keys (``{u:<id>}:<suffix>``, suffix without ``}``)?

    User ids may contain ``}``, so a prefix test alone could match another user's key
    (user ``a}b`` vs user ``a}b}:x``); per-user suffixes never contain ``}``.

    >>> owns_key("a}b", "{u:a}b}:profile"), owns_key("a}b", "{u:a}b}:x}:profile")
    (True, False)
    """
    prefix = keys.user_tag(user_id) + ":"
    return key.startswith(prefix) and "}" not in key[len(prefix) :]


class UserKeysEraser:
    """Every store key tagged with the user (profile, dedupe marks, and any later one)."""

    name = "store_keys"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def erase(self, user_id: str) -> int:
        found = await self.store.keys_with_prefix(keys.user_tag(user_id) + ":")
        return await self.store.delete([key for key in found if owns_key(user_id, key)])


class RecentEventsEraser:
    """The user's events in the site-wide feed of recent events."""

    name = "recent_events"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def erase(self, user_id: str) -> int:
        blobs = await self.store.list_range(keys.RECENT_EVENTS)
        mine = [blob for blob in blobs if mentions(orjson.loads(blob), user_id)]
        return await self.store.list_remove(keys.RECENT_EVENTS, mine)


def mentions(record: dict[str, Any], user_id: str) -> bool:
    """Does this event record belong to the user (as user id or anonymous id)?"""
    return record.get("user_id") == user_id or record.get("anonymous_id") == user_id


class ArchiveEraser:
    """Tombstones the user in the Parquet archive: rows hidden now, removed by compaction."""

    name = "archive_tombstones"
    pending = (
        "archive: the user's rows are hidden from readers now and are removed from the "
        "Parquet files by the next compaction (RELEVO_COMPACT_EVERY, or `relevo archive compact`)"
    )

    def __init__(self, root: Path, clock: Clock) -> None:
        self.root = root
        self.clock = clock

    async def erase(self, user_id: str) -> int:
        await asyncio.to_thread(add_tombstone, self.root, user_id, self.clock.now_ms())
        return 1
