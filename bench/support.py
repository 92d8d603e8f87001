"""Shared pieces of the benchmarks: servers in subprocesses and a closed-loop HTTP driver."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(
    command: list[str], env: dict[str, str], health_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    log = tempfile.NamedTemporaryFile(prefix="relevo-bench-", suffix=".log", delete=False)  # noqa: SIM115
    child = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log)
    try:
        wait_http(health_url)
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
        log.close()


@contextmanager
def relevo_server(env: dict[str, str]) -> Iterator[str]:
    with relevo_process(env) as (url, _):
        yield url


@contextmanager
def relevo_process(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`relevo serve` on a free port: its URL and pid (for RSS sampling)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "relevo",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with process(command, env, url + "/healthz") as child:
        yield url, child.pid


@contextmanager
def trivial_server() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "uvicorn", "bench.trivial_app:app",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with process(command, {}, url + "/ping"):
        yield url


@contextmanager
def redis_server(appendfsync: str = "everysec", under: Sequence[str] = ()) -> Iterator[str]:
    """A fresh `redis-server` (AOF on), its command prefixed by `under` (e.g. valgrind)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="relevo-bench-redis-") as directory:
        command = [
            *under, binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
            "--save", "", "--appendonly", "yes", "--appendfsync", appendfsync,
        ]  # fmt: skip
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import redis

            client = redis.Redis(port=port)
            deadline = time.monotonic() + (60 if under else 10)
            while True:
                try:
                    client.ping()
                    break
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            child.terminate()
            child.wait(timeout=10)


@contextmanager
def redis_under_callgrind() -> Iterator[tuple[str, int, Path]]:
    """A fresh `redis-server` under callgrind, counting nothing until switched on
    (`callgrind_control` of its pid): its URL, its pid, and the folder the counts go to."""
    with tempfile.TemporaryDirectory(prefix="relevo-redis-callgrind-") as name:
        folder = Path(name)
        under = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        under.append(f"--callgrind-out-file={folder / 'redis.out'}")
        with redis_server(under=under) as url:
            import redis

            pid = int(redis.Redis.from_url(url).info("server")["process_id"])
            yield url, pid, folder


async def drive(
    url: str,
    method: str,
    path: str,
    bodies: Callable[[int], bytes | None],
    seconds: float,
    concurrency: int,
    warmup: float = 1.0,
    probe: Callable[[], None] | None = None,
) -> tuple[int, float, int]:
    """Closed loop: `concurrency` clients send back to back. Returns (requests, seconds, errors).

    `probe` is called when the measured part starts and when it ends (to read, say, the
    server's CPU time over exactly the requests counted)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        counter = 0
        done = 0
        errors = 0
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def worker() -> None:
            nonlocal counter, done, errors
            while time.perf_counter() < stop_at:
                body = bodies(counter)
                counter += 1
                response = await client.request(method, path, content=body, headers=headers)
                if time.perf_counter() >= measure_from:
                    if response.status_code == 200:
                        done += 1
                    else:
                        errors += 1

        async def probes() -> None:
            if probe is not None:
                await asyncio.sleep(max(measure_from - time.perf_counter(), 0))
                probe()
                await asyncio.sleep(max(stop_at - time.perf_counter(), 0))
                probe()

        await asyncio.gather(probes(), *(worker() for _ in range(concurrency)))
        return done, seconds, errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    Console(stderr=True).print(table)


def data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="relevo-bench-data-"))


UNDER_CALLGRIND = "RELEVO_BENCH_UNDER_CALLGRIND"
"""Set (to "1") in a benchmark that runs itself again under callgrind to count instructions."""


def callgrind_control(option: str, pid: int | None = None) -> None:
    """Ask valgrind (running this process, or `pid`) to do something, and wait until it
    has: it reads the request while its process runs, so this one polls instead of
    blocking."""
    control = subprocess.Popen(
        ["callgrind_control", option, str(pid or os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while control.poll() is None:
        time.sleep(0.001)


def run_under_callgrind(
    module: str, arguments: list[str], *, cache_sim: bool = False
) -> list[dict[str, int]]:
    """`python -m module arguments` under callgrind, with `UNDER_CALLGRIND` set: the
    totals (``Ir``, and with `cache_sim` the L1 misses ``I1mr``, ``D1mr``, ``D1mw``...) of
    each window the run dumped (`callgrind_control`), in order. Instrumentation starts off;
    string hashing is fixed, so two runs of the same code count the same."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("--callgrind needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="relevo-callgrind-") as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--cache-sim={'yes' if cache_sim else 'no'}",
            "--instr-atstart=no", f"--callgrind-out-file={out}",
            sys.executable, "-m", module, *arguments,
        ]  # fmt: skip
        subprocess.run(
            command,
            env={**os.environ, UNDER_CALLGRIND: "1", "PYTHONHASHSEED": "0"},
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        dumps = sorted(Path(folder).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        return [callgrind_totals(dump) for dump in dumps]


def callgrind_totals(dump: Path) -> dict[str, int]:
    names: list[str] = []
    for line in dump.read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("totals:"):
            return dict(zip(names, map(int, line.split()[1:]), strict=True))
    raise RuntimeError(f"no totals in {dump}")
