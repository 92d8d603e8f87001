"""`relevo import`: 997 good lines in, 3 bad ones reported by line, nothing twice."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from relevo.cli import app
from relevo.eventlog.archive import read_events
from tests.support.servers import RelevoServer

T0 = 1_767_225_600_000
BAD_LINES = {17: "not json", 480: "naive timestamp", 1000: "unknown field"}


def write_jsonl(path: Path) -> None:
    with path.open("w") as handle:
        for line in range(1, 1001):
            event = {
                "type": "view",
                "user_id": f"u{line % 10}",
                "item_id": f"i{line}",
                "timestamp": T0 + line * 1000,
            }
            if BAD_LINES.get(line) == "not json":
                handle.write('{"type": "view", "user_id": \n')
                continue
            if BAD_LINES.get(line) == "naive timestamp":
                event["timestamp"] = "2026-01-01T00:00:00"
            if BAD_LINES.get(line) == "unknown field":
                event["colour"] = "red"
            handle.write(json.dumps(event) + "\n")


def run_import(*args: str, env: dict[str, str]) -> dict[str, object]:
    result = CliRunner().invoke(app, ["import", *args, "--output", "json"], env=env)
    assert result.exit_code in (0, 1), result.output
    report: dict[str, object] = orjson.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_jsonl_import_reports_bad_lines_and_is_idempotent(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    write_jsonl(source)
    env = {"RELEVO_DATA_DIR": str(tmp_path / "data")}
    first = run_import(str(source), env=env)
    assert (first["imported"], first["duplicates"], first["rejected"]) == (997, 0, 3)
    errors = first["errors"]
    assert isinstance(errors, list)
    assert [e["line"] for e in errors] == sorted(BAD_LINES)
    assert [e["field"] for e in errors] == [None, "timestamp", "colour"]
    again = run_import(str(source), env=env)
    assert (again["imported"], again["duplicates"], again["rejected"]) == (0, 997, 3)
    archived = read_events(tmp_path / "data" / "archive")
    assert archived.num_rows == 997  # original timestamps kept
    assert archived.column("timestamp")[0].as_py().year == 2026


def test_exit_code_says_whether_lines_were_rejected(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"type": "view", "user_id": "u", "timestamp": T0}) + "\n")
    env = {"RELEVO_DATA_DIR": str(tmp_path / "data")}
    assert CliRunner().invoke(app, ["import", str(good)], env=env).exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    result = CliRunner().invoke(app, ["import", str(bad)], env=env)
    assert result.exit_code == 1
    assert "line" in result.stdout
    assert "Traceback" not in result.output


def test_csv_with_dotted_and_json_columns(tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["event_id", "type", "user_id", "timestamp", "context.device", "items", "value"]
        )
        writer.writerow(
            ["c1", "purchase", "u1", str(T0), "mobile", '[{"item_id": "a", "price": 5}]', "5"]
        )
        writer.writerow(["c2", "view", "u1", "2026-01-01T00:01:00Z", "desktop", "", ""])
        writer.writerow(["c3", "view", "", "2026-01-01T00:02:00Z", "", "", ""])
    report = run_import(str(source), env={"RELEVO_DATA_DIR": str(tmp_path / "data")})
    assert (report["imported"], report["rejected"]) == (2, 1)
    assert report["errors"] == [
        {"line": 4, "field": "user_id", "message": "user_id or anonymous_id is required"}
    ]


def test_parquet_rows(tmp_path: Path) -> None:
    source = tmp_path / "events.parquet"
    table = pa.table(
        {
            "event_id": ["p1", "p2"],
            "type": ["view", "click"],
            "user_id": ["u1", "u2"],
            "timestamp": pa.array([T0, T0 + 1], type=pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(table, source)
    report = run_import(str(source), env={"RELEVO_DATA_DIR": str(tmp_path / "data")})
    assert (report["imported"], report["rejected"]) == (2, 0)


def test_a_running_server_keeps_its_data_dir_to_itself(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    write_jsonl(source)
    data = str(tmp_path / "data")
    with RelevoServer({"RELEVO_DATA_DIR": data}, tmp_path / "serve.log") as server:
        refused = CliRunner().invoke(app, ["import", str(source)], env={"RELEVO_DATA_DIR": data})
        assert refused.exit_code == 2
        assert "in use" in refused.output
        report = run_import(str(source), "--url", server.url, env={})
        assert (report["imported"], report["rejected"]) == (997, 3)
        import httpx

        profile = httpx.get(f"{server.url}/v1/users/u3").json()
        assert profile["counts"]["view"]["total"] == 100


@pytest.mark.parametrize("name", ["events.txt", "events"])
def test_unknown_format_is_a_clear_error(tmp_path: Path, name: str) -> None:
    source = tmp_path / name
    source.write_text("{}\n")
    result = CliRunner().invoke(
        app, ["import", str(source)], env={"RELEVO_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "--format" in result.output
