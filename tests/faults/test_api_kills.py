"""Acknowledged means durable: SIGKILL the server mid-stream, restart, count.

A client streams batches from two threads and records which events were
acknowledged. The server is killed with SIGKILL while batches are in flight
(for Redis, the Redis server is killed too: with ``appendfsync always`` its AOF
must hold everything it acknowledged). After a restart, every event is sent again:
the acknowledged ones must come back as duplicates, and each profile must count
each event exactly once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.servers import RedisServer, RelevoServer

USERS = 20
BATCH = 50


class Stream:
    """Sends numbered events in batches until told to stop or the server goes away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: dict[str, str] = {}  # event id -> user
        self.acknowledged: set[str] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0

    def _batch(self) -> list[dict[str, object]]:
        with self._lock:
            start = self._next
            self._next += BATCH
        now = int(time.time() * 1000)
        events = []
        for number in range(start, start + BATCH):
            event_id, user = f"e{number}", f"u{number % USERS}"
            events.append(
                {
                    "event_id": event_id,
                    "type": "view",
                    "user_id": user,
                    "item_id": f"i{number % 97}",
                    "timestamp": now,
                }
            )
            with self._lock:
                self.sent[event_id] = user
        return events

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                events = self._batch()
                try:
                    response = client.post("/v1/events", json={"events": events})
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    with self._lock:
                        self.acknowledged.update(e["event_id"] for e in events)  # type: ignore[misc]


def stream_then_kill(
    server: RelevoServer,
    kill_also: RedisServer | None,
    acked_before_kill: int,
    snapshot: Path | None = None,
) -> Stream:
    stream = Stream(server.url)
    threads = [threading.Thread(target=stream.run) for _ in range(2)]
    for thread in threads:
        thread.start()
    if snapshot is not None:  # kill after a snapshot, so the restart loads it and replays the tail
        wait_until(snapshot.exists, timeout=60)
        acked_before_kill += len(stream.acknowledged)
    wait_until(lambda: len(stream.acknowledged) >= acked_before_kill, timeout=60)
    server.kill()
    if kill_also is not None:
        kill_also.stop(kill=True)
    stream.stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return stream


def resend_and_check(server: RelevoServer, stream: Stream) -> None:
    ids = sorted(stream.sent, key=lambda e: int(e[1:]))
    statuses: dict[str, str] = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            events = [
                {
                    "event_id": e,
                    "type": "view",
                    "user_id": stream.sent[e],
                    "item_id": f"i{int(e[1:]) % 97}",
                    "timestamp": int(time.time() * 1000),
                }
                for e in chunk
            ]
            # timestamps differ from the first send: only the ids make these duplicates
            body = client.post("/v1/events", json={"events": events}).json()
            statuses.update({r["event_id"]: r["status"] for r in body["results"]})
        lost = [e for e in stream.acknowledged if statuses[e] != "duplicate"]
        assert not lost, f"{len(lost)} acknowledged events were lost, e.g. {lost[:5]}"
        for user_number in range(USERS):
            user = f"u{user_number}"
            expected = sum(1 for owner in stream.sent.values() if owner == user)
            profile = client.get(f"/v1/users/{user}").json()
            assert profile["counts"]["view"]["total"] == expected, user


@pytest.mark.slow
def test_embedded_survives_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"RELEVO_DATA_DIR": str(data), "RELEVO_SNAPSHOT_EVERY": "200ms"}
    server = RelevoServer(env, tmp_path / "serve.log").start()
    stream = stream_then_kill(
        server, None, acked_before_kill=2_000, snapshot=data / "snapshot.pickle"
    )
    with RelevoServer(env, tmp_path / "serve.log") as restarted:
        resend_and_check(restarted, stream)
    assert "replayed" in (tmp_path / "serve.log").read_text()


@pytest.mark.slow
@pytest.mark.redis
def test_redis_with_aof_always_survives_sigkill_of_relevo_and_redis(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    env = {"RELEVO_STORE": redis_server.url, "RELEVO_DATA_DIR": str(tmp_path / "data")}
    try:
        server = RelevoServer(env, tmp_path / "serve.log").start()
        stream = stream_then_kill(server, redis_server, acked_before_kill=3_000)
        redis_server.start()
        with RelevoServer(env, tmp_path / "serve.log") as restarted:
            resend_and_check(restarted, stream)
    finally:
        redis_server.stop()
