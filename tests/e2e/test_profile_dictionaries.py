"""Site profile dictionaries on a shared Redis: trained by one process, read by all.

Two engines share one redis-server (each has its own store client and dictionaries,
as two processes do); a third process (`relevo store train-dictionary`) trains and
activates a dictionary neither has seen. The one running background jobs writes with it
within a round; the other reads those documents without ever having refreshed; an
engine started later reads them too. Automatic training happens once, by one process.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from relevo.clock import SystemClock
from relevo.config import Settings
from relevo.demo.catalog import demo_items
from relevo.engine import Engine
from relevo.features import compact, dictionaries, site_dictionaries
from relevo.features.profile import COMPACT_V2, ProfileState, decode
from relevo.store import keys
from relevo.store.base import DocRead
from tests.conftest import unique_prefix
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def shared(redis_server: RedisServer, tmp_path: Path) -> Settings:
    return Settings(
        store=redis_server.url,
        redis_prefix=unique_prefix(),
        data_dir=tmp_path / "data",
        profile_dictionary_min_profiles=0,
    )


@pytest.fixture
async def engines(shared: Settings) -> AsyncIterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    for engine in started:
        await engine.stop()


async def _engine(settings: Settings, started: list[Engine], background: bool) -> Engine:
    engine = Engine(settings, SystemClock())
    await engine.start(background=background)
    started.append(engine)
    return engine


def _history(user: int, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """12 views, clicks, carts and purchases in a few favourite categories."""
    rng = random.Random(user)
    favourites = rng.sample(sorted({item["category"] for item in items}), 2)
    liked = [item for item in items if item["category"] in favourites]
    at = NOW_MS - rng.randrange(20 * 86_400_000)
    events = []
    for number in range(12):
        at += rng.randint(5_000, 90_000)
        events.append(
            {
                "event_id": f"d{user}-{number}",
                "type": rng.choice(["view"] * 6 + ["click", "click", "add_to_cart", "purchase"]),
                "user_id": f"user-{user}",
                "session_id": f"user-{user}-s{number // 6}",
                "timestamp": at,
                "item_id": rng.choice(liked)["item_id"],
            }
        )
    return events


async def _shoppers(engine: Engine, users: range) -> None:
    items = demo_items()
    events = [event for user in users for event in _history(user, items)]
    for start in range(0, len(events), 2_000):
        report = await engine.ingest(events[start : start + 2_000])
        assert report.count("accepted") == len(events[start : start + 2_000])


async def _state(engine: Engine, user_id: str) -> ProfileState:
    """The user's stored profile as `engine` decodes it (loading a dictionary it has not
    met). Why not `Engine.profile`: that renders as of now, and decayed affinities move
    between two reads made a moment apart."""
    (doc,) = await engine.store.docs_read(
        [DocRead(keys.profile_key(user_id), keys.profile_marks_key(user_id))]
    )
    assert doc.value is not None
    return decode(doc.value, engine.store.dictionaries)


async def _stored_dictionary(engine: Engine, user: int) -> int:
    (stored,) = await engine.store.get_many([keys.profile_key(f"user-{user}")])
    value = stored[9 + int.from_bytes(stored[5:9], "big") :]  # after the marks (DOC_FORMAT 2)
    assert value[0] == COMPACT_V2
    return value[1]


def _train_in_another_process(settings: Settings) -> dict[str, Any]:
    env = os.environ | {
        "RELEVO_STORE": settings.store,
        "RELEVO_REDIS_PREFIX": settings.redis_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "relevo", "store", "train-dictionary", "--sample", "200"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    trained: dict[str, Any] = orjson.loads(done.stdout)
    return trained


async def _until(condition: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.05)


async def test_engines_read_each_others_documents_across_a_site_dictionary(
    shared: Settings, engines: list[Engine]
) -> None:
    await _engine(shared, engines, background=False)  # loads the catalog before the others
    await engines[0].upsert_items(demo_items())
    writer = await _engine(shared, engines, background=True)
    reader = await _engine(shared, engines, background=False)  # never refreshes
    await _shoppers(writer, range(300))
    assert await _stored_dictionary(writer, 5) == dictionaries.BUILTIN

    trained = _train_in_another_process(shared)
    assert trained["activated"], trained
    assert trained["mean_bytes_after"] < trained["mean_bytes_before"]
    number = trained["number"]
    assert number not in writer.store.dictionaries
    assert number not in reader.store.dictionaries

    async def writer_follows() -> bool:
        return writer.store.dictionaries.active == number

    await _until(writer_follows)  # its background refresh (every REFRESH_S)
    await _shoppers(writer, range(300, 330))
    assert await _stored_dictionary(writer, 310) == number

    # the reader has never met dictionary `number`: its read loads it
    assert reader.store.dictionaries.active == dictionaries.BUILTIN
    profile = await _state(reader, "user-310")
    assert profile == await _state(writer, "user-310")
    assert number in reader.store.dictionaries
    # what the reader writes (still with the built-in one) the writer reads
    await _shoppers(reader, range(330, 335))
    assert await _stored_dictionary(reader, 331) == dictionaries.BUILTIN
    assert await _state(writer, "user-331") == await _state(reader, "user-331")

    # a process started later reads documents of both dictionaries
    restarted = await _engine(shared, engines, background=False)
    assert restarted.store.dictionaries.active == number  # refreshed at start
    assert await _state(restarted, "user-310") == profile
    assert await _state(restarted, "user-5") == await _state(writer, "user-5")


async def test_the_first_site_dictionary_is_trained_once_by_one_process(
    shared: Settings, engines: list[Engine]
) -> None:
    first = await _engine(shared, engines, background=False)
    await first.upsert_items(demo_items())
    second = await _engine(shared, engines, background=False)
    await _shoppers(first, range(260))
    early = site_dictionaries.AutoTraining(first.store, min_profiles=1_000)
    assert await early.run_once() is None  # not enough profiles yet
    both = [site_dictionaries.AutoTraining(engine.store, 250) for engine in (first, second)]
    results = await asyncio.gather(*(auto.run_once() for auto in both))
    trained = [result for result in results if result is not None]
    assert len(trained) == 1
    assert trained[0].number == 1
    assert trained[0].activated
    assert await first.store.counter(dictionaries.LAST_KEY) == 1
    (data,) = await first.store.get_many([dictionaries.key(1)])
    assert data is not None
    assert b"user-" not in data  # no user or session id: a dictionary is never erased
    assert await both[0].run_once() is None  # never again: the operator trains the next
    for engine in (first, second):
        assert await site_dictionaries.refresh(engine.store) == 1


async def test_training_in_a_serving_process_lets_its_requests_run_meanwhile(
    shared: Settings, engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training decodes and lays out its sample in slices, yielding in between: another
    task of the event loop (a request) gets a turn after every slice, where one undivided
    pass held the loop ~0.6 s for a sample of 2,500. Counted in profiles handled between
    two turns, not in time."""
    engine = await _engine(shared, engines, background=False)
    await engine.upsert_items(demo_items())
    await _shoppers(engine, range(600))
    handled, most = 0, 0

    def counted(function: Any) -> Any:
        def call(*args: Any) -> Any:
            nonlocal handled
            handled += 1
            return function(*args)

        return call

    monkeypatch.setattr(site_dictionaries, "decode", counted(site_dictionaries.decode))
    monkeypatch.setattr(compact, "layout", counted(compact.layout))

    async def request() -> None:
        nonlocal handled, most
        while True:
            most, handled = max(most, handled), 0
            await asyncio.sleep(0)

    other = asyncio.create_task(request())
    try:
        trained = await site_dictionaries.train(engine.store, sample=500)
    finally:
        other.cancel()
    assert trained.profiles == 480  # 600 sampled, every fifth held out
    assert 0 < most <= 2 * site_dictionaries.SLICE  # a decode and a layout per profile
