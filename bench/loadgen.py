"""An open-loop HTTP load generator: requests leave at a fixed arrival rate, whatever the
server does, so queueing shows up in the latencies instead of slowing the client down.

A closed-loop client (each connection waits for its answer before sending the next
request) measures a server that is never overloaded, because the client backs off
exactly when the server slows down ("coordinated omission"). Here request *i* is due at
``start + i / rate``; it is sent on an idle keep-alive connection, a new one (up to
``max_connections`` per target) or, when all are busy, waits in a queue, and its
latency is measured from when it was *due* to when its answer has fully arrived.

It runs in its own process (``python -m bench.loadgen``, a JSON spec on stdin, a JSON
result on stdout) so that its CPU is its own; bench.load measures its ceiling against
a trivial endpoint in the same run. HTTP/1.1 is written and parsed by hand on raw
asyncio transports (uvloop when installed), because an HTTP client library would cost
several times the CPU per request of the servers it measures.

Requests are made by *kinds* (see `KINDS`): ``ping`` (``GET /ping`` of the trivial
server), ``decide`` (``POST /v1/decide`` for a random known user) and ``events`` (``POST
/v1/events`` with a batch of new events of random known users), mixed by weight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

EVENT_TYPES = ["view"] * 14 + ["click"] * 3 + ["add_to_cart", "add_to_cart", "purchase"]
DEVICES = ["mobile", "mobile", "desktop"]


@dataclass(slots=True)
class Kind:
    """One kind of request: its name and a function building request bytes."""

    name: str
    build: Callable[[int], bytes]
    events: int = 0  # events carried by one request (for the events/s figure)


def _request(method: str, path: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if body is None:
        return (head + "\r\n").encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def make_kinds(spec: dict[str, Any]) -> dict[str, Kind]:
    rng = random.Random(spec.get("seed", 1))
    users: int = spec.get("users", 100_000)
    items: int = spec.get("items", 10_000)
    batch: int = spec.get("batch", 10)
    placements: list[str] = spec.get("placements", ["home_recs"])
    run = spec.get("run_id", "r")
    ping = _request("GET", "/ping")
    # Decisions: a pool of prepared requests (random users, devices and placements).
    decide_pool = [
        _request(
            "POST",
            "/v1/decide",
            orjson.dumps(
                {
                    "user_id": f"u{rng.randrange(users)}",
                    "placement": rng.choice(placements),
                    "context": {"device": rng.choice(DEVICES), "country": "FR"},
                }
            ),
        )
        for _ in range(8192)
    ]
    now_ms = int(time.time() * 1000)

    def events(number: int) -> bytes:
        # Built per request: every event id must be new, or the server only deduplicates.
        body = []
        for index in range(batch):
            kind = rng.choice(EVENT_TYPES)
            event: dict[str, Any] = {
                "event_id": f"{run}-{number}-{index}",
                "type": kind,
                "user_id": f"u{rng.randrange(users)}",
                "timestamp": now_ms,
                "context": {"device": rng.choice(DEVICES), "country": "FR"},
            }
            item = f"it-{rng.randrange(items)}"
            if kind == "purchase":
                event["items"] = [{"item_id": item, "quantity": 1}]
            else:
                event["item_id"] = item
            body.append(event)
        return _request("POST", "/v1/events", orjson.dumps({"events": body}))

    return {
        "ping": Kind("ping", lambda _: ping),
        "decide": Kind("decide", lambda n: decide_pool[n % len(decide_pool)]),
        "events": Kind("events", events, events=batch),
    }


@dataclass(slots=True)
class Stats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    fallbacks: int = 0
    in_window: int = 0  # good answers that arrived inside the measured window
    statuses: dict[int, int] = field(default_factory=dict)


class Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, answers parsed by hand."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.buffer = bytearray()
        self.current: tuple[str, float, bool] | None = None  # kind, due, counted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send(self, kind: str, data: bytes, due: float, counted: bool) -> None:
        self.current = (kind, due, counted)
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:")
        if start >= 0:
            stop = head.find(b"\r\n", start)
            length = int(head[start + 15 : stop if stop >= 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
        elif b"transfer-encoding: chunked" in head:
            total = self.buffer.find(b"\r\n0\r\n\r\n", end) + 7
            if total < 7:
                return
        else:
            total = end + 4
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        current, self.current = self.current, None
        assert current is not None
        self.target.finished(self, current, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.lost(self)


class Target:
    """One server: its connections, idle ones, and requests waiting for a connection."""

    def __init__(self, generator: Generator, host: str, port: int, max_connections: int) -> None:
        self.generator = generator
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.connections: set[Connection] = set()
        self.idle: list[Connection] = []
        self.waiting: deque[tuple[str, bytes, float, bool]] = deque()
        self.connecting = 0
        self.opening: set[asyncio.Future[None]] = set()

    async def open(self, count: int) -> None:
        await asyncio.gather(*(self._connect() for _ in range(count)))

    async def _connect(self) -> None:
        self.connecting += 1
        try:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(
                lambda: Connection(self), self.host, self.port
            )
        except OSError:
            self.generator.connect_errors += 1
            return
        finally:
            self.connecting -= 1
        self.connections.add(connection)
        self._next(connection)

    def submit(self, kind: str, data: bytes, due: float, counted: bool) -> None:
        if self.idle:
            self.idle.pop().send(kind, data, due, counted)
            return
        self.waiting.append((kind, data, due, counted))
        if len(self.connections) + self.connecting < self.max_connections:
            opening = asyncio.ensure_future(self._connect())
            self.opening.add(opening)
            opening.add_done_callback(self.opening.discard)

    def _next(self, connection: Connection) -> None:
        if self.waiting:
            connection.send(*self.waiting.popleft())
        else:
            self.idle.append(connection)

    def finished(
        self, connection: Connection, current: tuple[str, float, bool], status: int, body: bytes
    ) -> None:
        self.generator.record(current, status, body)
        self._next(connection)

    def lost(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.current is not None:
            self.generator.record(connection.current, 0, b"")
            connection.current = None

    def close(self) -> None:
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.rate: float = spec["rate"]
        self.seconds: float = spec["seconds"]
        self.warmup: float = spec.get("warmup", 1.0)
        self.timeout: float = spec.get("timeout", 2.0)
        self.kinds = make_kinds(spec)
        mix: dict[str, float] = spec["mix"]
        # A fixed, interleaved schedule of kinds (deterministic, so runs compare).
        rng = random.Random(spec.get("seed", 1) + 1)
        names = list(mix)
        self.schedule = rng.choices(names, weights=[mix[n] for n in names], k=10_000)
        per_target = max(1, spec.get("max_connections", 512) // len(spec["targets"]))
        self.targets = [Target(self, host, int(port), per_target) for host, port in spec["targets"]]
        self.stats = {name: Stats() for name in names}
        self.outstanding = 0
        self.all_sent = False
        self.drained = asyncio.Event()
        self.connect_errors = 0
        self.late: list[float] = []
        self.measure_from = 0.0
        self.measure_to = 0.0

    def record(self, current: tuple[str, float, bool], status: int, body: bytes) -> None:
        kind, due, counted = current
        self.outstanding -= 1
        if self.all_sent and self.outstanding == 0:
            self.drained.set()
        now = time.perf_counter()
        stats = self.stats[kind]
        if status == 200 and self.measure_from <= now < self.measure_to:
            stats.in_window += 1  # throughput: answers completed inside the window
        if not counted:
            return
        latency = now - due
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if status != 200:
            stats.errors += 1
        elif latency > self.timeout:
            stats.timeouts += 1
        else:
            stats.ok += 1
            stats.latencies.append(latency)
            if kind == "decide" and b'"fallback":true' in body:
                stats.fallbacks += 1

    async def run(self) -> dict[str, Any]:
        opened = self.spec.get("open_connections", 16)
        for target in self.targets:
            await target.open(opened)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter() + 0.05
        self.measure_from = start + self.warmup
        self.measure_to = self.measure_from + self.seconds
        total = int((self.warmup + self.seconds) * self.rate)
        interval = 1.0 / self.rate
        number = 0
        while number < total:
            now = time.perf_counter()
            due = start + number * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything due by now leaves now (after a timer tick, a small burst).
            while number < total and due <= now:
                counted = due >= self.measure_from
                if counted:
                    self.late.append(now - due)
                kind = self.schedule[number % len(self.schedule)]
                target = self.targets[number % len(self.targets)]
                self.outstanding += 1
                target.submit(kind, self.kinds[kind].build(number), due, counted)
                number += 1
                due = start + number * interval
        sent_until = time.perf_counter()
        self.all_sent = True
        if self.outstanding > 0:
            # What is still unanswered after the grace period counts as failed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), self.timeout)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
            cpu_before.ru_utime + cpu_before.ru_stime
        )
        unanswered = sum(len(t.waiting) for t in self.targets) + sum(
            1 for t in self.targets for c in t.connections if c.current and c.current[2]
        )
        for target in self.targets:
            target.close()
        return self.result(cpu / (sent_until - start), unanswered)

    def result(self, cpu_share: float, unanswered: int) -> dict[str, Any]:
        kinds: dict[str, Any] = {}
        everything: list[float] = []
        sent = ok = failed = completed = 0
        for name, stats in self.stats.items():
            latencies = np.array(stats.latencies) * 1000
            everything.extend(stats.latencies)
            count = stats.ok + stats.errors + stats.timeouts
            kinds[name] = {
                "ok": stats.ok,
                "errors": stats.errors,
                "timeouts": stats.timeouts,
                "fallbacks": stats.fallbacks,
                "statuses": {str(k): v for k, v in stats.statuses.items()},
                **_percentiles(latencies),
                "throughput": stats.in_window / self.seconds,
                "events_per_s": stats.in_window * self.kinds[name].events / self.seconds,
            }
            sent += count
            ok += stats.ok
            completed += stats.in_window
            failed += stats.errors + stats.timeouts
        # Requests due in the window that never got an answer before the grace period ended.
        failed += unanswered
        sent += unanswered
        late = np.array(self.late) * 1000 if self.late else np.zeros(1)
        return {
            "rate": self.rate,
            "dispatched": int((self.warmup + self.seconds) * self.rate),
            "seconds": self.seconds,
            "sent": sent,
            "ok": ok,
            "failed": failed,
            "unanswered": unanswered,
            "error_rate": failed / sent if sent else 1.0,
            "throughput": completed / self.seconds,
            **_percentiles(np.array(everything) * 1000),
            "kinds": kinds,
            "connections": sum(len(t.connections) for t in self.targets),
            "connect_errors": self.connect_errors,
            "send_late_p99_ms": float(np.percentile(late, 99)),
            "generator_cpu": cpu_share,
        }


def _percentiles(latencies_ms: Any) -> dict[str, float | None]:
    if len(latencies_ms) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(latencies_ms.max()),
    }


def main() -> None:
    spec = orjson.loads(sys.stdin.buffer.read())
    try:
        import uvloop

        result = uvloop.run(Generator(spec).run())
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(Generator(spec).run())
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
