"""A store that times every call (`relevo_store_operation_duration_seconds`).

It wraps any backend without touching it: each coroutine method of the `Store`
protocol is timed and observed under its name. Why a wrapper rather than timing
inside each backend: both backends stay free of monitoring code, and a new
primitive is timed the day it is added to the protocol.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, cast

from relevo.monitoring.metrics import STORE_DURATION
from relevo.store.base import Store


class TimedStore:
    """Forwards everything to `inner`; coroutine methods are timed."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.backend = inner.backend

    @property
    def inner(self) -> Store:
        return self._inner

    # isinstance(timed, MemoryStore) stays true (as with unittest.mock's spec): code and
    # tests that ask which backend they hold keep working through the wrapper.
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._inner)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name.startswith("_") or not callable(found):
            return found
        timed = _timed(name, found)
        # Cache the wrapper: later calls skip __getattr__ entirely.
        object.__setattr__(self, name, timed)
        return timed


def _timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    histogram = STORE_DURATION.labels(name)

    @wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        if not isinstance(result, Awaitable):
            return result
        return _observe(result, histogram)

    return call


async def _observe(result: Awaitable[Any], histogram: Any) -> Any:
    started = time.perf_counter()
    try:
        return await result
    finally:
        histogram.observe(time.perf_counter() - started)


def timed(store: Store) -> Store:
    """`store`, timed (a store already timed is returned as it is)."""
    if isinstance(store, TimedStore):
        return cast(Store, store)
    return cast(Store, TimedStore(store))
