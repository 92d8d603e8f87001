"""The event loop's lateness: a stall is observed as long as it held the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from relevo.monitoring.loop_lag import LoopLag

DEADLINE_S = 10.0


async def _until(condition: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    """Yield to the loop until `condition()` holds (its callbacks must run meanwhile)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "not observed in time"
        await asyncio.sleep(0.001)


def _compute_for(seconds: float) -> None:
    """Hold the loop as a long computation does."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_a_stall_is_observed_about_as_long_as_it_held_the_loop() -> None:
    observed: list[float] = []
    lag = LoopLag(observed.append, interval_s=0.005)
    lag.start()
    lag.start()  # again: still one callback
    try:
        await _until(lambda: len(observed) >= 3)
        seen = len(observed)
        _compute_for(0.08)  # the stall under test
        await _until(lambda: len(observed) > seen)
        stalled = observed[seen]
        assert 0.08 - 0.005 - 0.002 <= stalled < 1.0  # due at most one interval into it
    finally:
        lag.stop()
    assert lag._handle is None
