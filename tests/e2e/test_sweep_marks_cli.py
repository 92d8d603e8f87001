"""`relevo store sweep-marks`: a whole pass now, on Redis."""

from __future__ import annotations

import asyncio
import time

import orjson
from typer.testing import CliRunner

from relevo.cli import app
from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine

USERS = 5
DAY = 86_400_000


async def _seed(settings: Settings, clock: ManualClock) -> None:
    """Users whose last events arrived 8 days ago (the system clock sweeps them)."""
    engine = Engine(settings, clock)
    await engine.start(background=False)
    await engine.ingest(
        [
            {
                "event_id": f"e{user}-{step}",
                "type": "view",
                "user_id": f"sweep-{user}",
                "item_id": f"i{step}",
                "timestamp": clock.now_ms() - 1000,
            }
            for user in range(USERS)
            for step in range(3)
        ]
    )
    await engine.stop()


def test_sweep_marks_drops_idle_users_marks_on_redis(settings: Settings) -> None:
    env = {
        "RELEVO_STORE": settings.store,
        "RELEVO_DATA_DIR": str(settings.data_dir),
        "RELEVO_REDIS_PREFIX": settings.redis_prefix,
    }
    runner = CliRunner()
    if not settings.is_redis:
        result = runner.invoke(app, ["store", "sweep-marks"], env=env)
        assert result.exit_code == 2
        assert "for Redis" in result.output
        return
    asyncio.run(_seed(settings, ManualClock(time.time_ns() // 1_000_000 - 8 * DAY)))
    result = runner.invoke(app, ["store", "sweep-marks"], env=env)
    assert result.exit_code == 0, result.output
    done = orjson.loads(result.stdout)
    assert (done["documents"], done["swept"], done["running"]) == (USERS, USERS, False)
    assert done["freed_bytes"] == USERS * (7 + 3 * 8)
