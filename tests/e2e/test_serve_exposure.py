"""`relevo serve` without keys: loud on loopback, refused anywhere else."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from relevo.cli import app


def test_serve_without_keys_refuses_a_public_interface(tmp_path: Path) -> None:
    env = {"RELEVO_DATA_DIR": str(tmp_path), "RELEVO_WRITE_KEY": "", "RELEVO_ADMIN_KEY": ""}
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], env=env)
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.output
    assert not (tmp_path / "LOCK").exists()  # it stopped before opening anything
