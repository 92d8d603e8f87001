"""`relevo users erase` and `relevo archive compact`, in process (embedded) and over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from relevo.cli import app
from relevo.config import Settings
from relevo.engine import Engine
from tests.support.servers import RelevoServer
from tests.support.traces import file_traces


async def _seed(settings: Settings, user: str) -> None:
    engine = Engine(settings)
    await engine.start(background=False)
    await engine.ingest([{"type": "view", "user_id": user, "item_id": f"i{n}"} for n in range(3)])
    await engine.stop()  # archives and snapshots


def test_erase_in_process_with_compaction(tmp_path: Path) -> None:
    user = "cli-erase-91ce"
    asyncio.run(_seed(Settings(data_dir=tmp_path), user))
    assert file_traces(tmp_path, user)
    env = {"RELEVO_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["users", "erase", user, "--compact"], env=env)
    assert result.exit_code == 0, result.output
    receipt = orjson.loads(result.stdout)
    assert receipt["user_id"] == user
    assert receipt["compaction"]["rows_removed"] == 3
    assert receipt["pending"] == []
    assert file_traces(tmp_path, user) == []
    again = CliRunner().invoke(app, ["archive", "compact", "--grace", "0s"], env=env)
    assert again.exit_code == 0, again.output
    assert orjson.loads(again.stdout)["tombstones_applied"] == 0


@pytest.mark.slow
def test_erase_through_a_running_server(tmp_path: Path) -> None:
    env = {"RELEVO_DATA_DIR": str(tmp_path / "data"), "RELEVO_ADMIN_KEY": "adm1,adm0"}
    with RelevoServer(env, tmp_path / "server.log") as server:
        cli_env = {"RELEVO_ADMIN_KEY": "adm1,adm0"}
        args = ["users", "erase", "someone", "--url", server.url]
        result = CliRunner().invoke(app, args, env=cli_env)
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout)["removed"]["store_keys"] == 0
        refused = CliRunner().invoke(app, [*args, "--key", "wrong"])
        assert refused.exit_code == 2
        assert "401" in refused.output
