"""The engine on both backends: recovery after a crash, replay determinism, the archive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.eventlog.archive import read_events
from relevo.eventlog.base import LogRecord

T0 = 1_767_225_600_000
MIN = 60_000


def events_for(user: str, count: int, start: int = T0) -> list[dict[str, Any]]:
    kinds = ["view", "view", "click", "add_to_cart", "view", "purchase"]
    return [
        {
            "event_id": f"{user}-{n}",
            "type": kinds[n % len(kinds)],
            "user_id": user,
            "item_id": f"item-{n % 7}",
            "category": f"cat-{n % 3}",
            "timestamp": start + n * 7 * MIN,
            "value": 10.0 if kinds[n % len(kinds)] == "purchase" else None,
        }
        for n in range(count)
    ]


def clean(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if value is not None}


@pytest.fixture
async def engine(settings: Settings, clock: ManualClock) -> AsyncIterator[Engine]:
    engine = Engine(settings, clock)
    await engine.start(background=False)
    yield engine
    await engine.stop()


async def test_records_logged_but_not_applied_are_recovered_at_start(
    settings: Settings, clock: ManualClock
) -> None:
    clock.set(T0 + 86_400_000)
    first = Engine(settings, clock)
    await first.start(background=False)
    report = await first.ingest([clean(e) for e in events_for("alice", 3)])
    assert report.count("accepted") == 3
    # A crash right after the durable append: the log has records the state doesn't.
    crashed = [clean(e) for e in events_for("bob", 4)]
    await first.backend.append(
        [LogRecord("event", "bob", orjson.dumps(event)) for event in crashed]
    )
    await first.committer.stop()
    await first.backend.close()

    second = Engine(settings, clock)
    await second.start(background=False)
    try:
        bob = await second.profile("bob")
        assert bob is not None
        assert bob["events"] == 4
        alice = await second.profile("alice")
        assert alice is not None
        assert alice["events"] == 3
        again = await second.ingest(crashed)
        assert again.count("duplicate") == 4
    finally:
        await second.stop()


async def test_replaying_history_gives_the_live_state(
    settings: Settings, clock: ManualClock, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Live (clock moving with the events) and a later backfill of the archive agree."""
    live = Engine(settings, clock)
    await live.start(background=False)
    history = [clean(e) for e in events_for("carol", 40) + events_for("dave", 25, T0 + MIN)]
    history.sort(key=lambda e: e["timestamp"])
    for event in history:
        clock.set(event["timestamp"])
        await live.ingest([event])
    await live.archiver.flush()
    clock.set(T0 + 10 * 3_600_000)
    expected = {user: await live.profile(user) for user in ("carol", "dave")}
    await live.stop()

    replay_settings = Settings(data_dir=tmp_path_factory.mktemp("replay"))
    replay = Engine(replay_settings, clock)
    await replay.start(background=False)
    try:
        archived = read_events(settings.archive_path).to_pylist()
        assert len(archived) == len(history)
        rows = [
            clean(
                {
                    **row,
                    "timestamp": row["timestamp"].isoformat(),
                    "context": None,
                    "properties": None,
                    "position": None,
                    "items": None,
                }
            )
            for row in archived
        ]
        await replay.ingest(rows)
        for user, profile in expected.items():
            assert await replay.profile(user) == profile
    finally:
        await replay.stop()


async def test_archive_is_parquet_by_day_and_readable_by_duckdb(
    engine: Engine, clock: ManualClock
) -> None:
    day_two = T0 + 86_400_000
    clock.set(day_two + 86_400_000)
    report = await engine.ingest(
        [clean(e) for e in events_for("erin", 3) + events_for("erin-2", 2, day_two)]
    )
    assert report.count("accepted") == 5
    await engine.upsert_items([{"item_id": "a", "category": "shoes"}])
    assert await engine.archiver.flush() == 6
    root = engine.settings.archive_path
    days = sorted(path.name for path in (root / "events").iterdir())
    assert days == ["date=2026-01-01", "date=2026-01-02"]
    assert list((root / "items").glob("*/*.parquet"))
    import duckdb

    with duckdb.connect() as db:
        counts = db.sql(
            "select date, count(*) from "
            f"read_parquet('{root}/events/*/*.parquet', hive_partitioning=true) "
            "group by 1 order by 1"
        ).fetchall()
    assert [(str(day), n) for day, n in counts] == [("2026-01-01", 3), ("2026-01-02", 2)]
    assert await engine.archiver.flush() == 0  # nothing archived twice


async def test_health_reports_ok(engine: Engine) -> None:
    health = await engine.health()
    assert health["status"] == "ok"
