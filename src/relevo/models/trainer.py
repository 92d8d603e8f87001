"""Training jobs: train a version, register it, promote it; and periodic retraining.

`Trainer.train` allocates a version, runs `training.train_version` on the archive
(in this process, a worker thread, or a worker process), then registers the version
through the log (and promotes it when asked). Periodic retraining
(`RELEVO_RETRAIN_EVERY`, ``relevo serve --retrain-every``) runs the same job in a
*worker process*, so training's Python work never competes with request handling
for the GIL; with several API processes on Redis a store lease lets one of them
retrain per period. A retrained version is promoted when it is at least
`PROMOTE_TOLERANCE` as good on its holdout as the promoted one (holdouts of
different windows are not strictly comparable, so the bar only stops clear
regressions).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from relevo.errors import RelevoError
from relevo.features.profile import FeatureParams
from relevo.models import training_data
from relevo.models.registry import ModelRegistry
from relevo.models.training import PROPENSITY, Progress, check_name, train_version
from relevo.store.base import Store

log = logging.getLogger(__name__)

PROMOTE_TOLERANCE = 0.9
RETRAIN_LEASE = "models:retrain:lease"

Submit = Callable[[dict[str, Any]], Awaitable[None]]
"""Commits a `models` log record (and applies it)."""


def train_from_archive(
    archive: Path,
    folder: Path,
    name: str,
    params: FeatureParams,
    holdout: float = 0.2,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Read the archive and train `name` into `folder` (a worker process runs this)."""
    data = training_data.load(archive)
    return train_version(name, data, folder, params, holdout=holdout, progress=progress)


def quality(meta: dict[str, Any]) -> float | None:
    """One higher-is-better number to compare versions of a model on their holdouts."""
    metrics = meta.get("metrics", {})
    if meta.get("kind") == PROPENSITY:
        losses = [
            target["calibrated"]["log_loss"]
            for target in metrics.values()
            if isinstance(target, dict) and "calibrated" in target
        ]
        return -sum(losses) / len(losses) if losses else None
    found = metrics.get("holdout", {}).get("ndcg@20")
    return None if found is None else float(found)


def worth_promoting(new: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether retraining should promote `new` over the `current` promoted version's metadata.

    >>> worth_promoting({"metrics": {"holdout": {"ndcg@20": 0.19}}},
    ...                 {"metrics": {"holdout": {"ndcg@20": 0.2}}})
    True
    >>> worth_promoting({"metrics": {"holdout": {"ndcg@20": 0.1}}},
    ...                 {"metrics": {"holdout": {"ndcg@20": 0.2}}})
    False
    """
    if current is None:
        return True
    new_quality, old_quality = quality(new), quality(current)
    if new_quality is None or old_quality is None:
        return new_quality is not None or old_quality is None
    # Higher is better; for negative numbers (minus a loss) the tolerance widens the other way.
    bar = old_quality * PROMOTE_TOLERANCE if old_quality >= 0 else old_quality / PROMOTE_TOLERANCE
    return new_quality >= bar


class Trainer:
    def __init__(
        self,
        registry: ModelRegistry,
        store: Store,
        submit: Submit,
        archive: Path,
        params: FeatureParams,
        before: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.submit = submit
        self.archive = archive
        self.params = params
        self.before = before
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._executor: Executor | None = None

    async def train(
        self,
        name: str,
        *,
        promote: bool = False,
        progress: Progress | None = None,
        executor: Executor | None = None,
        holdout: float = 0.2,
    ) -> dict[str, Any]:
        """Train, register (and promote) a version of `name`; its metadata.

        Without an `executor` training runs here, blocking (the CLI); with one it
        runs there and the event loop keeps serving.
        """
        check_name(name)
        if self.before is not None:
            await self.before()  # make the archive current (flush the log)
        version = await self.registry.allocate(name)
        folder = self.registry.folder(name, version)
        if executor is None:
            meta = train_from_archive(self.archive, folder, name, self.params, holdout, progress)
        else:
            loop = asyncio.get_running_loop()
            meta = await loop.run_in_executor(
                executor, train_from_archive, self.archive, folder, name, self.params, holdout
            )
        await self.submit(self.registry.register_record(name, version, meta))
        if promote:
            await self.promote(name, version)
        return {**meta, "version": version, "promoted": promote}

    async def promote(self, name: str, version: str) -> dict[str, Any]:
        previous = await self.registry.active_version(name)
        await self.submit(await self.registry.promote_record(name, version))
        await self.registry.refresh()  # this process serves it before answering
        return {"name": name, "version": version, "previous": previous}

    async def rollback(self, name: str, version: str | None = None) -> dict[str, Any]:
        previous = await self.registry.active_version(name)
        record = await self.registry.rollback_record(name, version)
        await self.submit(record)
        await self.registry.refresh()
        return {"name": name, "version": record["version"], "previous": previous}

    # -- periodic retraining ------------------------------------------------------------
    def worker(self) -> Executor:
        """One worker process (spawned: a fork of a threaded server is unsafe)."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        return self._executor

    async def retrain(self, names: Sequence[str], every_ms: int) -> list[dict[str, Any]]:
        """One round of periodic retraining (skipped when another process holds the lease)."""
        if not await self.store.lease(RETRAIN_LEASE, self.owner, max(every_ms - 1000, 1000)):
            return []
        done = []
        for name in names:
            try:
                meta = await self.train(name, executor=self.worker())
            except RelevoError as error:
                log.warning("retraining %s skipped: %s", name, error.message)
                continue
            served = self.registry.served(name)
            active = await self.registry.active_version(name)
            current = served.meta if served is not None and served.version == active else None
            if worth_promoting(meta, current):
                await self.promote(name, meta["version"])
                meta["promoted"] = True
            else:
                log.warning("retrained %s %s not promoted: worse holdout", name, meta["version"])
            done.append(meta)
        return done

    async def close(self) -> None:
        """Stop the worker process (waiting, off the event loop, for a job it is running)."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
