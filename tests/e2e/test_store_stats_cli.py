"""`relevo store stats`: keys and bytes per structure, on the embedded store and Redis."""

from __future__ import annotations

import asyncio

import orjson
from typer.testing import CliRunner

from relevo.cli import app
from relevo.config import Settings
from relevo.engine import Engine

USERS = 7


async def _seed(settings: Settings) -> None:
    engine = Engine(settings)
    await engine.start(background=False)
    await engine.upsert_items([{"item_id": f"i{n}", "category": "shoes"} for n in range(4)])
    await engine.ingest(
        [
            {
                "type": kind,
                "user_id": f"stats-{user}",
                "session_id": f"s{user}",
                "item_id": f"i{(user + step) % 4}",
            }
            for user in range(USERS)
            for step, kind in enumerate(["view", "view", "click", "add_to_cart"])
        ]
    )
    await engine.stop()


def _env(settings: Settings) -> dict[str, str]:
    return {
        "RELEVO_STORE": settings.store,
        "RELEVO_DATA_DIR": str(settings.data_dir),
        "RELEVO_REDIS_PREFIX": settings.redis_prefix,
    }


def test_store_stats_counts_known_keys_and_finds_every_ttl(settings: Settings) -> None:
    asyncio.run(_seed(settings))
    result = CliRunner().invoke(
        app, ["store", "stats", "--json", "--sample", "3"], env=_env(settings)
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    kinds = report["kinds"]
    assert report["backend"] == ("redis" if settings.is_redis else "embedded")
    assert kinds["profile"]["keys"] == USERS
    # dedupe marks: inside the profile document on Redis, their own key embedded
    assert (
        "profile marks" not in kinds
        if settings.is_redis
        else kinds["profile marks"]["keys"] == USERS
    )
    assert kinds["profile"]["per_user"]
    assert kinds["profile"]["sampled"] == 3
    assert not kinds["profile"]["exact"]
    assert kinds["profile"]["bytes"] > 0
    assert kinds["items"]["keys"] == 7  # four items, the index, the generation, the changes
    assert not kinds["items"]["per_user"]
    assert kinds["live co-visitation"]["keys"] >= 1
    assert kinds["trending"]["keys"] >= 1
    assert report["totals"]["user_keys"] >= (1 if settings.is_redis else 2) * USERS
    assert report["totals"]["user_keys_without_ttl"] == 0
    for entry in kinds.values():
        if entry["per_user"]:
            assert entry["without_ttl"] == 0
    if settings.is_redis:
        assert report["memory"]["used_memory"] > 0
        assert kinds["log streams"]["keys"] >= 1
    else:
        assert report["disk"]["log.sqlite3"] > 0


def test_store_stats_prints_a_table(settings: Settings) -> None:
    asyncio.run(_seed(settings))
    result = CliRunner().invoke(app, ["store", "stats"], env=_env(settings))
    assert result.exit_code == 0, result.output
    assert "profile (per user)" in result.stdout
    assert ("profile marks (per user)" in result.stdout) is not settings.is_redis
    assert "extrapolated" not in result.stdout  # 100 per kind measures every key here
    assert ("used_memory" if settings.is_redis else "on disk: log.sqlite3") in result.stdout
