"""`RELEVO_WORKER_NICE`: a worker that shares cores with API processes yields the CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unique_prefix
from tests.support.polling import wait_until
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis


def worker(redis: RedisServer, tmp_path: Path, nice: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RELEVO_STORE": redis.url,
        "RELEVO_REDIS_PREFIX": unique_prefix(),
        "RELEVO_APPLY": "worker",
        "RELEVO_DATA_DIR": str(tmp_path / "data"),
        "RELEVO_WORKER_NICE": nice,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "relevo", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_worker_lowers_its_priority_as_told(redis_server: RedisServer, tmp_path: Path) -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    child = worker(redis_server, tmp_path, "7")
    try:
        wait_until(lambda: os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, ours + 7))
        assert child.poll() is None  # and runs
    finally:
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=30)


def test_a_priority_out_of_range_is_refused_plainly(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    child = worker(redis_server, tmp_path, "25")
    _, error = child.communicate(timeout=60)
    assert child.returncode != 0
    assert b"worker_nice" in error
    assert b"Traceback" not in error
