"""How late the event loop runs what is due: the time a request waits behind others.

Why: a process answers every request on one event loop, so anything that holds it (a
long computation, a garbage collection of many objects, a background job that does too
much at once) delays every request in flight by as long. Request latencies show it only
mixed with everything else; this measures it alone. A callback is scheduled every
`interval_s` and, when it runs, observes how long after its due time that was
(``relevo_event_loop_lag_seconds``). A quiet process shows well under a millisecond; a
stall of 30 ms shows as one observation of 10 to 30 ms (less than the stall by how long
it had run when the callback fell due), whatever the requests around it did. The lag
is also how long one turn of the loop took: every request ready in that turn, and
every timer due, waited behind the others.

The cost is one timer callback every `interval_s` (20 ms: 50 a second, a few
microseconds each), not a task or a thread. Why 20 ms: a stall of S ms is seen above
10 ms when the callback falls due in its first S - 10 ms, so every stall of 30 ms or
more is, and half of those of 20 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

INTERVAL_S = 0.02


class LoopLag:
    """Observes the running loop's lateness every `interval_s` with `observe`."""

    def __init__(self, observe: Callable[[float], None], interval_s: float = INTERVAL_S) -> None:
        self.observe = observe
        self.interval_s = interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Start sampling on the running loop (again: no effect)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._schedule(self._loop.time())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.interval_s
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self.observe(max(0.0, now - self._due))
        self._schedule(now)
