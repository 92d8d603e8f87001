"""What the engine observes live is what a replay of its archive computes.

Live, the applier snapshots each event's profile as it folds the event in and the
monitoring hook computes a batch's features column-wise afterwards; a replay
(baselines, references) rebuilds the profiles from the archive. Both must give the
same values per feature, in the same order, on both backends.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.models import training_data
from relevo.monitoring.features import replay_features

T0 = 1_767_225_600_000
MINUTE = 60_000


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    clock.set(T0 + 5 * 24 * 60 * MINUTE)  # after every event below
    engine = Engine(settings.model_copy(update={"demo_catalog": True}), clock)
    await engine.start(background=False)
    yield engine
    await engine.stop()


def shop_events(count: int, seed: int) -> list[dict[str, Any]]:
    """A few users with several sessions each (gaps past the session timeout), consent
    events (not observed), purchases of one or two lines, searches without an item."""
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    at = T0
    for number in range(count):
        at += rng.choice([1_000, 5 * MINUTE, 45 * MINUTE])
        kind = rng.choice(["view", "view", "add_to_cart", "purchase", "search", "consent"])
        event: dict[str, Any] = {
            "event_id": f"live-{seed}-{number}",
            "type": kind,
            "user_id": f"u{rng.randrange(5)}",
            "timestamp": at,
            "context": {"device": rng.choice(["mobile", "desktop"]), "country": "FR"},
        }
        if kind == "purchase":
            event["value"] = rng.choice([19.9, 45.0])
            event["items"] = [
                {"item_id": "sho-001", "quantity": 1, "price": 19.9}
                for _ in range(rng.randrange(1, 3))
            ]
        elif kind == "consent":
            event["properties"] = {"personalization": True}
        elif kind != "search":
            event["item_id"] = rng.choice(["sho-001", "boo-001", "ele-001"])
        found.append(event)
    return found


async def test_live_observations_are_the_archive_s_replay(engine: Engine) -> None:
    events = shop_events(300, seed=3)
    for start in range(0, len(events), 120):  # batches that continue the same profiles
        report = await engine.ingest(events[start : start + 120])
        assert report.count("accepted") == len(events[start : start + 120])
    await engine.monitoring.flush()
    live = await engine.monitoring.observations.columns()

    await engine.archiver.flush()
    archived = await asyncio.to_thread(training_data.load, engine.settings.archive_path)
    replayed = replay_features(archived.records, engine.params)

    assert live == replayed
    observed = sum(event["type"] != "consent" for event in events)
    assert len(live["event.type"]) == observed
    assert 0 < len(live["context.device"]) < observed  # once per session
    assert len(live["event.value"]) == sum(event["type"] == "purchase" for event in events)


@pytest.mark.parametrize("share", [0.0, 0.5])
async def test_a_sample_observes_the_events_its_ids_choose(
    settings: Settings, clock: ManualClock, share: float
) -> None:
    clock.set(T0 + 5 * 24 * 60 * MINUTE)
    engine = Engine(settings.model_copy(update={"drift_sample": share}), clock)
    await engine.start(background=False)
    try:
        events = shop_events(200, seed=4)
        await engine.ingest(events)
        await engine.monitoring.flush()
        live = await engine.monitoring.observations.columns()
    finally:
        await engine.stop()
    chosen = [
        event
        for event in events
        if event["type"] != "consent"
        and zlib.crc32(event["event_id"].encode()) % 10_000 < share * 10_000
    ]
    assert len(live.get("event.type", [])) == len(chosen)
    assert live.get("event.type", []) == [event["type"] for event in chosen]
    assert share == 0.0 or 0 < len(chosen) < len(events)
