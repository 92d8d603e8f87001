"""Per-key rate limits: a token bucket per API key, kept in the store.

The bucket lives in the store (`Store.take_tokens`, one atomic script on Redis), so
the limit holds across every API process behind a load balancer. A request costs one
token whatever its size (batches are bounded separately by `RELEVO_MAX_BATCH` and the
body size). Without keys (open mode on loopback) there is nothing to key on and no
limit. A refused request gets 429 with ``Retry-After`` (whole seconds, rounded up).
"""

from __future__ import annotations

from relevo.auth import Principal
from relevo.clock import Clock
from relevo.errors import RateLimited
from relevo.store.base import Store


def bucket_key(key_id: str) -> str:
    return "ratelimit:" + key_id


class RateLimiter:
    def __init__(self, store: Store, clock: Clock, rate_per_s: int, burst: int) -> None:
        self.store = store
        self.clock = clock
        self.rate_per_s = rate_per_s
        self.burst = burst

    async def check(self, principal: Principal) -> None:
        """Spend a token of the principal's key, or raise `RateLimited`."""
        if principal.key_id is None or self.rate_per_s == 0:
            return
        grant = await self.store.take_tokens(
            bucket_key(principal.key_id), 1, self.rate_per_s, self.burst, self.clock.now_ms()
        )
        if not grant.allowed:
            raise RateLimited(
                f"this key is limited to {self.rate_per_s} requests per second "
                f"(bursts of {self.burst}); retry later",
                retry_after_ms=grant.retry_after_ms,
            )
