"""SIGKILL a worker in the middle of its work, 20 times: every event applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.faults.support import USERS, EventStream, views
from tests.support.polling import wait_until
from tests.support.servers import RedisServer, RelevoServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]
KILLS = 20


def applied_total(url: str) -> int:
    stats = httpx.get(url + "/v1/stats", timeout=10).json()
    return int(stats["events"].get("view", {}).get("total", 0))


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "relevo", "worker"],
            env={**os.environ, **env},
            stdout=output,
            stderr=output,
        )


def test_killing_workers_never_loses_or_doubles_an_event(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    env = {
        "RELEVO_STORE": redis.url,
        "RELEVO_APPLY": "worker",
        "RELEVO_LOG_PARTITIONS": "4",
        "RELEVO_WORKER_LEASE": "1s",
        "RELEVO_DATA_DIR": str(tmp_path / "data"),
    }
    try:
        with RelevoServer(env, tmp_path / "serve.log") as api:
            stream = EventStream(api.url)
            sender = threading.Thread(target=stream.run)
            sender.start()
            try:
                for _ in range(KILLS):
                    before = applied_total(api.url)
                    worker = start_worker(env, tmp_path / "worker.log")
                    wait_until(lambda b=before: applied_total(api.url) > b, timeout=60)
                    worker.send_signal(signal.SIGKILL)  # in the middle of whatever it does
                    worker.wait(timeout=10)
            finally:
                stream.stop.set()
                sender.join(timeout=30)
            assert len(stream.acknowledged) > 0
            survivor = start_worker(env, tmp_path / "worker.log")
            try:
                stream.resend_all(api.url)  # retries of everything, acknowledged or not
                for user_number in range(USERS):
                    user = f"u{user_number}"
                    wait_until(lambda u=user: views(api.url, u) >= stream.expected(u), timeout=60)
                    assert views(api.url, user) == stream.expected(user), user
            finally:
                survivor.send_signal(signal.SIGTERM)
                survivor.wait(timeout=30)
    finally:
        redis.stop()
