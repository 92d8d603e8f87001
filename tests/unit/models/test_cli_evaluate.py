"""`relevo evaluate` end to end on a small synthetic JSONL file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relevo.cli import app
from relevo.models.catalog import CATALOG
from relevo.models.synthetic import SyntheticData


@pytest.fixture(scope="module")
def events_file(tastes: SyntheticData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tastes.interactions
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    with path.open("w") as fh:
        for k in range(len(data)):
            ts = int(data.timestamps[k])
            # Alternate both timestamp spellings the event schema allows.
            stamp: object = ts if k % 2 else datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat()
            event = {
                "type": data.type_names[data.types[k]],
                "user_id": f"user-{data.user_ids[data.users[k]]}",
                "item_id": f"sku-{data.item_ids[data.items[k]]}",
                "timestamp": stamp,
            }
            fh.write(json.dumps(event) + "\n")
    return path


def test_json_output_has_protocol_and_every_model(events_file: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--data", str(events_file), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"protocol", "models"}
    assert report["protocol"]["interactions"] == 6000
    assert report["protocol"]["ks"] == [10, 20]
    assert set(report["models"]) == set(CATALOG)
    for name, entry in report["models"].items():
        for metric in ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10", "coverage@20"):
            assert 0.0 <= entry[metric] <= 1.0, (name, metric)
        assert entry["train_seconds"] >= 0
    relevo = report["models"]["relevo"]
    assert relevo["ndcg@20"] > report["models"]["popularity"]["ndcg@20"]
    assert report["protocol"]["comparison"]["metric"] == "ndcg@20"


def test_table_output_and_model_selection(events_file: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--data", str(events_file), "--models", "popularity,ease", "--k", "5"],
    )
    assert result.exit_code == 0, result.output
    assert "popularity" in result.stdout
    assert "ndcg@5" in result.stdout
    assert "hr@10" in result.stdout


def test_unknown_model_and_bad_file_exit_2(events_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--data", str(events_file), "--models", "nope"])
    assert result.exit_code == 2
    assert "unknown models" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    result = runner.invoke(app, ["evaluate", "--data", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output
