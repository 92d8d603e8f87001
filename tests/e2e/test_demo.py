"""`relevo demo --users 2000` against a live server: ml beats default on CTR, in < 3 min."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.support.servers import RelevoServer


@pytest.mark.slow
def test_the_demo_shows_personalization_working(tmp_path: Path) -> None:
    with RelevoServer(
        {"RELEVO_DATA_DIR": str(tmp_path / "data")}, tmp_path / "serve.log"
    ) as server:
        started = time.monotonic()
        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "relevo",
                "demo",
                "--url",
                server.url,
                "--users",
                "2000",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr[-2000:]
    result = orjson.loads(finished.stdout.strip().splitlines()[-1])
    assert set(result) >= {"experiment", "arms"}
    arms = result["arms"]
    assert set(arms) == {"default", "rules", "ml"}
    for arm in arms.values():
        assert set(arm) >= {"users", "exposures", "ctr", "conversion", "p_value_vs_control"}
    assert sum(arm["users"] for arm in arms.values()) == 2000
    assert arms["ml"]["ctr"] > arms["default"]["ctr"]
    assert arms["ml"]["p_value_vs_control"] < 0.05
    assert elapsed < 180
