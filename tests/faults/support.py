"""Streams of events for fault tests: what was sent, what was acknowledged."""

from __future__ import annotations

import threading
import time

import httpx

USERS = 20
BATCH = 50


class EventStream:
    """Sends numbered view events in batches until stopped; records what was acknowledged.

    With `retry`, a batch that meets a 503 (or a dropped connection) is sent again until it
    is acknowledged, as the SDKs do.
    """

    def __init__(self, url: str, *, retry: bool = False) -> None:
        self.url = url
        self.retry = retry
        self.sent: dict[str, str] = {}  # event id -> user
        self.acknowledged: set[str] = set()
        self.acknowledged_at: dict[str, float] = {}  # event id -> time.monotonic()
        self.refusals = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0

    def batch(self) -> list[dict[str, object]]:
        with self._lock:
            start = self._next
            self._next += BATCH
        now = int(time.time() * 1000)
        events = []
        for number in range(start, start + BATCH):
            event_id, user = f"e{number}", f"u{number % USERS}"
            events.append({"event_id": event_id, "type": "view", "user_id": user, "timestamp": now})
            with self._lock:
                self.sent[event_id] = user
        return events

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                events = self.batch()
                while True:
                    try:
                        response = client.post("/v1/events", json={"events": events})
                    except httpx.HTTPError:
                        response = None
                    if response is not None and response.status_code == 200:
                        at = time.monotonic()
                        with self._lock:
                            for event in events:
                                self.acknowledged.add(str(event["event_id"]))
                                self.acknowledged_at[str(event["event_id"])] = at
                        break
                    self.refusals += 1
                    if not self.retry or self.stop.is_set():
                        if not self.retry:
                            return
                        break
                    time.sleep(0.2)  # back off like a client would (not a wait in the test)

    def expected(self, user: str) -> int:
        return sum(1 for owner in self.sent.values() if owner == user)

    def resend_all(self, url: str) -> dict[str, str]:
        """Send every event again (retries of everything); return each id's status."""
        statuses: dict[str, str] = {}
        ids = sorted(self.sent, key=lambda e: int(e[1:]))
        now = int(time.time() * 1000)
        with httpx.Client(base_url=url, timeout=30) as client:
            for start in range(0, len(ids), 500):
                chunk = [
                    {"event_id": e, "type": "view", "user_id": self.sent[e], "timestamp": now}
                    for e in ids[start : start + 500]
                ]
                while True:
                    response = client.post("/v1/events", json={"events": chunk})
                    if response.status_code == 200:
                        break
                    assert response.status_code == 503, response.text
                    time.sleep(0.2)  # the client's back-off, as above
                results = response.json()["results"]
                statuses.update({r["event_id"]: r["status"] for r in results})
        return statuses


def views(url: str, user: str) -> int:
    response = httpx.get(f"{url}/v1/users/{user}", timeout=10)
    if response.status_code == 404:
        return 0
    return int(response.json()["counts"]["view"]["total"])
