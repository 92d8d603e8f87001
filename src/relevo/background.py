"""Periodic background jobs that stop cleanly.

Cancelling a task in the middle of a Redis command can leave a connection half
used, so stopping first asks every job to finish its current round, and only
cancels one that doesn't finish in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from relevo.errors import RelevoError

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called: a long job checks it between its rounds."""
        return self._stopping.is_set()

    @property
    def jobs(self) -> list[str]:
        """The names of the jobs started, in order."""
        return [task.get_name() for task in self._tasks]

    def every(self, seconds: float, work: Callable[[], Awaitable[Any]], name: str) -> None:
        """Run `work` every `seconds` until `stop`; errors are logged, never fatal."""

        async def loop() -> None:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
                    return
                try:
                    await work()
                except RelevoError as error:
                    log.warning("%s: %s", name, error.message)
                except Exception:
                    log.exception("%s failed", name)

        self._tasks.append(asyncio.create_task(loop(), name=name))

    async def stop(self, grace_s: float = 5.0) -> None:
        self._stopping.set()
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=grace_s)
        for task in late:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
