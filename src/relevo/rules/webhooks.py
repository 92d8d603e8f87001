"""Webhooks: push each outbox action to an HTTP endpoint, signed, with retries.

Per target, one process at a time delivers (a store lease), in outbox order, from a
cursor kept in the store, so a restart or another process continues where the last
one stopped. A failed delivery is retried with exponential backoff (0.5 s, 1 s, 2 s,
... capped at 60 s, `attempts` times); after that the action is recorded as failed
and delivery moves on. Delivery is at least once: a crash between a 2xx and saving
the cursor delivers that action again, so receivers dedupe on ``X-Relevo-Id``.

Signature: ``X-Relevo-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
A receiver recomputes it over the raw body and rejects old timestamps (replays).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
from dataclasses import dataclass

import httpx
import orjson

from relevo.clock import Clock
from relevo.rules.outbox import Outbox
from relevo.store.base import Store

log = logging.getLogger(__name__)

LEASE_MS = 60_000
BATCH = 100


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    name: str
    url: str
    secret: str
    types: frozenset[str] | None = None  # action types to send; None: all


def signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    """The value of ``X-Relevo-Signature`` for a body sent at `timestamp_ms`.

    >>> signature("s3cret", 1000, b'{"id":"a"}')[:30]
    't=1000,v1=db750696561d373c7197'
    """
    digest = hmac.new(secret.encode(), f"{timestamp_ms}.".encode() + body, hashlib.sha256)
    return f"t={timestamp_ms},v1={digest.hexdigest()}"


class WebhookDeliverer:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        targets: list[WebhookTarget],
        clock: Clock,
        *,
        attempts: int = 10,
        first_delay_s: float = 0.5,
        max_delay_s: float = 60.0,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.targets = targets
        self.clock = clock
        self.attempts = attempts
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.owner = f"{socket.gethostname()}-{os.getpid()}"
        self.client = httpx.AsyncClient(timeout=10)

    async def run_once(self) -> int:
        """Deliver what is waiting for every target this process holds; return how many."""
        delivered = 0
        for target in self.targets:
            if await self.store.lease(f"webhooks:{target.name}:lease", self.owner, LEASE_MS):
                delivered += await self._drain(target)
        return delivered

    async def _drain(self, target: WebhookTarget) -> int:
        cursor_key = f"webhooks:{target.name}:cursor"
        cursor_blob = await self.store.get(cursor_key)
        cursor = None if cursor_blob is None else cursor_blob.decode()
        delivered = 0
        for position, action in await self.outbox.entries(cursor, BATCH):
            if target.types is None or action["type"] in target.types:
                if await self._deliver(target, action):
                    delivered += 1
                else:
                    await self.store.map_set(
                        f"webhooks:{target.name}:failed", {action["id"]: orjson.dumps(action)}
                    )
            await self.store.set_many({cursor_key: position.encode()})
        return delivered

    async def _deliver(self, target: WebhookTarget, action: dict[str, object]) -> bool:
        body = orjson.dumps(action)
        delay = self.first_delay_s
        for attempt in range(1, self.attempts + 1):
            headers = {
                "content-type": "application/json",
                "x-relevo-id": str(action["id"]),
                "x-relevo-attempt": str(attempt),
                "x-relevo-signature": signature(target.secret, self.clock.now_ms(), body),
            }
            try:
                response = await self.client.post(target.url, content=body, headers=headers)
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {error}"
            log.warning(
                "webhook %s: action %s attempt %d failed (%s)",
                target.name,
                action["id"],
                attempt,
                problem,
            )
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
                await self.store.lease(f"webhooks:{target.name}:lease", self.owner, LEASE_MS)
        return False

    async def close(self) -> None:
        await self.client.aclose()
