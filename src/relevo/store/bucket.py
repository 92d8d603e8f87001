"""Token-bucket arithmetic shared by the backends (the Redis script mirrors it in Lua).

Tokens are counted in thousandths and time in milliseconds, so a rate in tokens per
second refills exactly `rate` thousandths per millisecond: integer arithmetic, the
same answer in Python and in Redis' Lua (whose numbers are doubles, exact for these
integers).
"""

from __future__ import annotations

from relevo.store.base import BucketGrant

MILLI = 1000


def check(cost: int, rate_per_s: int, burst: int) -> None:
    if rate_per_s < 1 or burst < 1:
        raise ValueError("a token bucket needs a rate and a burst of at least 1")
    if not 1 <= cost <= burst:
        raise ValueError(f"cost {cost} must be between 1 and the burst ({burst})")


def take(
    state: tuple[int, int] | None, cost: int, rate_per_s: int, burst: int, now_ms: int
) -> tuple[BucketGrant, tuple[int, int], int]:
    """(the grant, the new state (milli-tokens, time), ms until the bucket is full again).

    >>> grant, state, full_in = take(None, 1, rate_per_s=10, burst=2, now_ms=0)
    >>> grant, state, full_in
    (BucketGrant(allowed=True, remaining=1, retry_after_ms=0), (1000, 0), 100)
    """
    capacity = burst * MILLI
    tokens, at = capacity, now_ms
    if state is not None:
        tokens, at = state
        if now_ms > at:
            tokens = min(capacity, tokens + (now_ms - at) * rate_per_s)
            at = now_ms
    needed = cost * MILLI
    if tokens >= needed:
        tokens -= needed
        grant = BucketGrant(True, tokens // MILLI, 0)
    else:
        grant = BucketGrant(False, tokens // MILLI, _ceil_div(needed - tokens, rate_per_s))
    return grant, (tokens, at), max(1, _ceil_div(capacity - tokens, rate_per_s))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
