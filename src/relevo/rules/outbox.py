"""The outbox: actions emitted by rules, for clients to pull or webhooks to push.

A message is written before the profile change that emitted it commits, under a
deterministic id (rule + cause), and the store keeps each id once: a retry, a
replay or a second process emitting the same action stores it once.

Actions are for acting now. One whose moment (the event's time, or a timer's due
time) is more than `max_delay_ms` in the past when it is emitted is dropped and
counted (``relevo_actions_late_total``): a backfill of last year's carts, a replay
of the log after the id dedupe horizon, or a scheduler that was down for hours must
not send offers for moments long gone. The rule's segments and attributes still
apply: the profile is the same whenever it is rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from relevo.clock import Clock, to_iso
from relevo.monitoring.metrics import ACTIONS_LATE
from relevo.rules.engine import OutboxMessage
from relevo.store.base import Store

OUTBOX = "{outbox}:actions"
DEDUPE_MS = 7 * 86_400_000
KEPT = 1_000_000

log = logging.getLogger(__name__)


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
    def __init__(self, store: Store, clock: Clock, max_delay_ms: int = 0) -> None:
        self.store = store
        self.clock = clock
        #: 0: every action is emitted, however old its moment.
        self.max_delay_ms = max_delay_ms

    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        """Store the messages that are still timely (see the module docstring)."""
        if not messages:
            return
        now = self.clock.now_ms()
        timely = [m for m in messages if not self._late(m, now)]
        late = len(messages) - len(timely)
        if late:
            ACTIONS_LATE.inc(late)
            log.info(
                "%d rule action(s) not emitted: their moment is over %d ms old "
                "(RELEVO_ACTION_MAX_DELAY)",
                late,
                self.max_delay_ms,
            )
        if timely:
            await self.store.stream_add(
                OUTBOX,
                [(m.message_id, orjson.dumps(action_body(m))) for m in timely],
                now,
                DEDUPE_MS,
                KEPT,
            )

    def _late(self, message: OutboxMessage, now_ms: int) -> bool:
        return (
            self.max_delay_ms > 0
            and message.at_ms is not None
            and now_ms - message.at_ms > self.max_delay_ms
        )

    async def entries(self, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """(position, action) pairs after cursor `after`, oldest first."""
        found = await self.store.stream_read(OUTBOX, after, limit)
        return [(entry.position, orjson.loads(entry.body)) for entry in found]

    async def read(self, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Actions after cursor `after`, and the cursor to continue from."""
        entries = await self.entries(after, limit)
        return [action for _, action in entries], entries[-1][0] if entries else after
