"""`relevo train` and `relevo models` on a data directory, as an operator runs them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relevo.cli import app
from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from tests.serving.conftest import with_traffic


async def archived_traffic(data_dir: Path) -> None:
    clock = ManualClock()
    engine = Engine(Settings(data_dir=data_dir), clock)
    await engine.start(background=False)
    await with_traffic(engine, clock, users=30)
    await engine.stop()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELEVO_SERVING_MODEL", "popularity")
    asyncio.run(archived_traffic(tmp_path / "data"))
    return tmp_path / "data"


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_train_list_promote_rollback(data_dir: Path) -> None:
    where = ["--data-dir", str(data_dir)]
    trained = json.loads(
        run("train", "--model", "popularity", "--promote", "--format", "json", *where)
    )
    assert [(m["name"], m["version"], m["promoted"]) for m in trained] == [
        ("popularity", "v1", True)
    ]
    assert "ndcg@20" in run("train", "--model", "popularity", *where)  # v2, the table
    assert run("models", "promote", "v2", *where).strip() == "popularity: serving v2 (was v1)"
    listing = json.loads(run("models", "list", "popularity", "--format", "json", *where))
    [entry] = listing["models"]
    assert (entry["active"], [v["version"] for v in entry["versions"]]) == ("v2", ["v1", "v2"])
    assert run("models", "rollback", *where).strip() == "popularity: serving v1 (was v2)"
    assert "* v1" in run("models", "list", *where)


def test_errors_are_one_line_without_a_traceback(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["models", "promote", "v9", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "no version 'v9' of model 'popularity'" in result.output
    result = CliRunner().invoke(app, ["train", "--model", "nope", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "no trainable model 'nope'" in result.output
