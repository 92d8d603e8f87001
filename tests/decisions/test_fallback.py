"""Always answer: a failing model, a stopped store or a slow one give the fallback, fast."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relevo.api.app import create_app
from relevo.config import Settings
from relevo.engine import Engine
from tests.decisions.conftest import PLACEMENTS
from tests.support.servers import RedisServer

SLACK_S = 0.25  # scheduling noise on a shared 2-core machine


async def test_a_model_that_raises_gives_the_default_items(engine: Engine) -> None:
    async def broken(user_id: str | None, k: int, context: Any) -> Any:
        raise RuntimeError("model exploded")

    engine.decisions.personalized = broken
    engine.decisions.popular = broken
    decision = await engine.decide({"user_id": "u", "placement": "home_recs"})
    assert decision["fallback"] is True
    assert "model exploded" in decision["fallback_reason"]
    assert [item["item_id"] for item in decision["items"]] == ["boo-001", "boo-002"]


async def test_a_slow_model_is_cut_at_the_deadline(engine: Engine) -> None:
    import asyncio

    async def slow(user_id: str | None, k: int, context: Any) -> Any:
        await asyncio.sleep(5)  # the fault under test, not a wait in the test
        return []

    engine.decisions.popular = slow
    await engine.put_config("placements", PLACEMENTS)  # home_recs' 50 ms deadline
    started = time.perf_counter()
    decision = await engine.decide({"user_id": "u", "placement": "home_recs"})
    assert time.perf_counter() - started < 0.05 + SLACK_S
    assert decision["fallback"] is True
    assert "deadline" in decision["fallback_reason"]


@pytest.fixture
def client(own_redis: RedisServer, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(store=own_redis.url, data_dir=tmp_path / "data", demo_catalog=True)
    with TestClient(create_app(settings)) as client:
        assert client.put("/v1/placements", json=PLACEMENTS).status_code == 200
        yield client


def decide(client: TestClient, placement: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = client.post("/v1/decide", json={"user_id": "u", "placement": placement})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer, elapsed


@pytest.mark.redis
def test_decisions_answer_while_redis_is_stopped(
    client: TestClient, own_redis: RedisServer
) -> None:
    assert decide(client, "home_hero")[0]["fallback"] is False
    own_redis.stop(kill=True)
    for placement, expected in (("home_hero", "A"), ("home_recs", None)):
        answer, elapsed = decide(client, placement)
        assert answer["fallback"] is True
        assert elapsed < 0.05 + SLACK_S
        if expected:
            assert answer["variant"]["id"] == expected
        else:
            assert [i["item_id"] for i in answer["items"]] == ["boo-001", "boo-002"]
    own_redis.start()
    assert decide(client, "home_hero")[0]["fallback"] is False


@pytest.mark.redis
def test_a_paused_redis_hits_the_deadline(client: TestClient, own_redis: RedisServer) -> None:
    redis = own_redis.client()
    redis.execute_command("CLIENT", "PAUSE", "500", "ALL")
    try:
        answer, elapsed = decide(client, "home_hero")
    finally:
        redis.execute_command("CLIENT", "UNPAUSE")
        redis.close()
    assert answer["fallback"] is True
    assert "deadline" in answer["fallback_reason"]
    assert elapsed < 0.05 + SLACK_S
