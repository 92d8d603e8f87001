"""The outbox: actions emitted by rules, for clients to pull or webhooks to push.

A message is written before the profile change that emitted it commits, under a
deterministic id (rule + cause), and the store keeps each id once: a retry, a
replay or a second process emitting the same action stores it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from relevo.clock import Clock, to_iso
from relevo.rules.engine import OutboxMessage
from relevo.store.base import Store

OUTBOX = "{outbox}:actions"
DEDUPE_MS = 7 * 86_400_000
KEPT = 1_000_000


def action_body(message: OutboxMessage) -> dict[str, Any]:
    """The public shape: ``{id, rule_id, user_id, type, at, payload}``."""
    return {
        "id": message.message_id,
        "rule_id": message.rule_id,
        "user_id": message.user_id,
        "type": message.name,
        "at": None if message.at_ms is None else to_iso(message.at_ms),
        "payload": dict(message.payload),
    }


class Outbox:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        if messages:
            await self.store.stream_add(
                OUTBOX,
                [(m.message_id, orjson.dumps(action_body(m))) for m in messages],
                self.clock.now_ms(),
                DEDUPE_MS,
                KEPT,
            )

    async def entries(self, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """(position, action) pairs after cursor `after`, oldest first."""
        found = await self.store.stream_read(OUTBOX, after, limit)
        return [(entry.position, orjson.loads(entry.body)) for entry in found]

    async def read(self, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Actions after cursor `after`, and the cursor to continue from."""
        entries = await self.entries(after, limit)
        return [action for _, action in entries], entries[-1][0] if entries else after
