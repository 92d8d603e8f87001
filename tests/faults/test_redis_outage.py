"""Redis goes away: decisions keep answering, ingestion says 503, nothing is lost or doubled."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.support import USERS, EventStream, views
from tests.support.polling import wait_until
from tests.support.servers import RedisServer, RelevoServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]
PLACEMENT = {"variants": [{"id": "A"}, {"id": "B"}], "default": "A"}


class Decisions:
    """Asks for decisions in a loop; keeps every answer's status and fallback flag."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[float, int, bool]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                response = client.post(
                    "/v1/decide", json={"user_id": f"u{n % USERS}", "placement": "hero"}
                )
                fallback = response.status_code == 200 and response.json()["fallback"]
                self.answers.append((time.monotonic(), response.status_code, fallback))


def test_a_ten_second_outage(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", appendfsync="always").start()
    env = {"RELEVO_STORE": redis.url, "RELEVO_DATA_DIR": str(tmp_path / "data")}
    try:
        with RelevoServer(env, tmp_path / "serve.log") as api:
            assert httpx.put(api.url + "/v1/placements/hero", json=PLACEMENT).status_code == 200
            stream, decisions = EventStream(api.url, retry=True), Decisions(api.url)
            threads = [threading.Thread(target=stream.run), threading.Thread(target=decisions.run)]
            for thread in threads:
                thread.start()
            try:
                wait_until(lambda: len(stream.acknowledged) >= 500, timeout=30)
                redis.stop()
                down_at = time.monotonic()
                wait_until(lambda: stream.refusals > 0, timeout=10)  # ingestion answers 503
                wait_until(lambda: time.monotonic() - down_at >= 10, timeout=15)
                up_at = time.monotonic()
                redis.start()  # the AOF brings back everything acknowledged
                acknowledged = len(stream.acknowledged)
                wait_until(lambda: len(stream.acknowledged) > acknowledged + 500, timeout=60)
            finally:
                stream.stop.set()
                decisions.stop.set()
                for thread in threads:
                    thread.join(timeout=30)
            during = [a for a in decisions.answers if down_at + 0.5 < a[0] < up_at]
            assert during, "decisions were asked during the outage"
            assert all(status == 200 for _, status, _ in decisions.answers)
            assert all(fallback for _, _, fallback in during)
            assert not decisions.answers[-1][2]  # and normal service is back
            stream.resend_all(api.url)
            for user_number in range(USERS):
                user = f"u{user_number}"
                assert views(api.url, user) == stream.expected(user), user
    finally:
        redis.stop()


def test_with_appendfsync_everysec_a_crash_loses_at_most_about_a_second(tmp_path: Path) -> None:
    """`appendfsync everysec`: Redis fsyncs its AOF once a second, so a crash of the Redis
    host can lose what was acknowledged in the last second or two (docs/operations.md)."""
    redis = RedisServer(tmp_path / "redis", appendfsync="everysec").start()
    env = {"RELEVO_STORE": redis.url, "RELEVO_DATA_DIR": str(tmp_path / "data")}
    try:
        with RelevoServer(env, tmp_path / "serve.log") as api:
            stream = EventStream(api.url)
            sender = threading.Thread(target=stream.run)
            sender.start()
            wait_until(lambda: len(stream.acknowledged) >= 2_000, timeout=60)
            redis.stop(kill=True)
            killed_at = time.monotonic()
            stream.stop.set()
            sender.join(timeout=30)
            redis.start()
            statuses = stream.resend_all(api.url)
        lost = [e for e in stream.acknowledged if statuses[e] == "accepted"]
        assert all(killed_at - stream.acknowledged_at[e] <= 2.5 for e in lost), "older loss"
    finally:
        redis.stop()
