"""Periodic retraining: a worker process, promoted unless clearly worse, one process at once."""

from __future__ import annotations

import doctest

import pytest

import relevo.models.trainer
from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.models.trainer import RETRAIN_LEASE, quality
from tests.serving.conftest import EngineFactory, with_traffic
from tests.support.polling import eventually


def test_docstring_examples() -> None:
    result = doctest.testmod(relevo.models.trainer, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_quality_is_ndcg_or_minus_the_calibrated_log_loss() -> None:
    assert quality({"kind": "hybrid", "metrics": {"holdout": {"ndcg@20": 0.3}}}) == 0.3
    assert quality({"kind": "hybrid", "metrics": {"holdout": {}}}) is None
    propensity = {
        "kind": "propensity",
        "metrics": {
            "click": {"calibrated": {"log_loss": 0.4}},
            "convert": {"calibrated": {"log_loss": 0.2}},
            "holdout_fraction": 0.2,
        },
    }
    assert quality(propensity) == pytest.approx(-0.3)


async def test_serve_retrains_in_a_worker_process_and_promotes(
    settings: Settings, make_engine: EngineFactory, clock: ManualClock
) -> None:
    if settings.is_redis:
        pytest.skip("the worker process is the same on both; the lease is tested on both")
    prepared = await make_engine()
    await with_traffic(prepared, clock, users=20)
    await prepared.stop()
    update = {"serving_model": "popularity", "retrain_every": 1000}
    engine = Engine(settings.model_copy(update=update), clock)
    await engine.start()  # with its background jobs, retraining among them
    try:

        async def served_version() -> str | None:
            served = engine.models.served("popularity")
            return None if served is None else served.version

        assert await eventually(served_version, within=120, interval=0.1) == "v1"
        [listing] = await engine.model_versions("popularity")
        assert listing["versions"][0]["metrics"]["holdout"]
    finally:
        await engine.stop()


async def test_one_process_retrains_per_period(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    engine = await make_engine(serving_model="popularity")
    await with_traffic(engine, clock, users=10)
    # Another API process took this period's lease: this one does not retrain.
    assert await engine.store.lease(RETRAIN_LEASE, "another-process", 60_000)
    assert await engine.trainer.retrain(["popularity"], every_ms=60_000) == []
    assert await engine.models.active_version("popularity") is None
