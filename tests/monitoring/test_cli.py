"""`relevo monitoring baseline` and `relevo monitoring drift`, in process (embedded)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import orjson
from typer.testing import CliRunner

from relevo.cli import app
from relevo.config import Settings
from relevo.engine import Engine
from tests.monitoring.streams import shoppers

T0 = 1_767_225_600_000


async def _seed(settings: Settings) -> None:
    engine = Engine(settings)
    await engine.start(background=False)
    events = shoppers(np.random.default_rng(2), 100, T0, prefix="cli")
    assert (await engine.ingest(events)).count("accepted") == len(events)
    await engine.stop()  # archives


def test_baseline_then_drift_from_the_command_line(tmp_path: Path) -> None:
    env = {"RELEVO_DATA_DIR": str(tmp_path)}
    empty = CliRunner().invoke(app, ["monitoring", "baseline"], env=env)
    assert empty.exit_code == 2
    assert "not enough values in the archive" in empty.output
    asyncio.run(_seed(Settings(data_dir=tmp_path)))
    captured = CliRunner().invoke(app, ["monitoring", "baseline", "--source", "archive"], env=env)
    assert captured.exit_code == 0, captured.output
    assert captured.stdout.startswith("baseline baseline:")
    assert "from 300 archive values" in captured.stdout
    shown = CliRunner().invoke(app, ["monitoring", "drift", "--format", "json"], env=env)
    assert shown.exit_code == 0, shown.output
    report = orjson.loads(shown.stdout)
    assert report["reference"]["source"] == "baseline"
    assert report["status"] == "ok"
    assert {f["feature"] for f in report["features"]} >= {"event.value", "context.device"}
    table = CliRunner().invoke(app, ["monitoring", "drift"], env=env)
    assert table.exit_code == 0, table.output
    assert "event.value" in table.stdout
    bad = CliRunner().invoke(app, ["monitoring", "baseline", "--since", "soon"], env=env)
    assert bad.exit_code == 2
    assert "ISO-8601" in bad.output
