"""An API process on Redis keeps no state per event: its memory does not grow with traffic.

The soak of `bench.memory` measures RSS over minutes; this checks the cause it found
(a cache of every event id's mark, which only grew) in seconds, with tracemalloc:
after a warm-up, applying 10,000 more distinct events must not retain memory in the
process (what they change lives in Redis).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from pathlib import Path

import pytest

from relevo.config import Settings
from relevo.engine import Engine
from tests.conftest import unique_prefix
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis

BATCH = 500


def batch(start: int) -> list[dict[str, object]]:
    now = int(time.time() * 1000)
    return [
        {
            "event_id": f"mem-{number}",
            "type": "view",
            "user_id": f"u{number % 1_000}",
            "item_id": f"i{number % 50}",
            "timestamp": now,
        }
        for number in range(start, start + BATCH)
    ]


async def test_applying_events_retains_no_memory_per_event(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = Settings(
        store=redis_server.url, redis_prefix=unique_prefix(), data_dir=tmp_path / "data"
    )
    engine = Engine(settings)
    await engine.start(background=False)
    try:
        for start in range(0, 4_000, BATCH):  # warm-up: every user has a profile
            await engine.ingest(batch(start))
        gc.collect()
        tracemalloc.start()  # traces what is allocated from now on, and still held later
        before = tracemalloc.get_traced_memory()[0]
        for start in range(4_000, 14_000, BATCH):
            await engine.ingest(batch(start))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        await engine.stop()
    # a cache of their marks alone held 1.8 MB (180 bytes each)
    assert grown < 500_000, f"{grown:,} bytes retained for 10,000 events"
