"""Real processes for tests: a `redis-server` and `relevo serve`, on free ports.

Tests start and stop them themselves, so fault tests can kill and restart them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.support.polling import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "redis-server is not installed: `make test` installs it (apt-get install redis-server)"
        )
    return found


class RedisServer:
    """A redis-server of our own, optionally with AOF persistence."""

    def __init__(self, directory: Path, *, appendfsync: str | None = None) -> None:
        self.directory = directory
        self.appendfsync = appendfsync
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.appendfsync is not None:
            command += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        else:
            command += ["--appendonly", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            wait_until(lambda: _pings(client), timeout=10)
        finally:
            client.close()
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
    except redis.exceptions.BusyLoadingError:
        return False


class RelevoServer:
    """`relevo serve` in a subprocess, as a user would run it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "RELEVO_PORT": str(self.port), "RELEVO_HOST": "127.0.0.1"}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> RelevoServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relevo", "serve"], env=self.env, stdout=log, stderr=log
        )
        log.close()
        wait_until(self._healthy, timeout=timeout)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"relevo serve exited: {self.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __enter__(self) -> RelevoServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class RedisClusterServers:
    """Three masters (no replicas) on free ports, joined with `redis-cli --cluster create`."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.directory = directory
        self.nodes = [RedisServer(directory / f"node{n}") for n in range(nodes)]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> RedisClusterServers:
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            command = [
                redis_binary(),
                "--port", str(node.port),
                "--bind", "127.0.0.1",
                "--dir", str(node.directory),
                "--save", "",
                "--appendonly", "no",
                "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),  # the default (port + 10000) may not exist
                "--cluster-config-file", str(node.directory / "nodes.conf"),
                "--cluster-node-timeout", "2000",
                "--logfile", str(node.directory / "redis.log"),
            ]  # fmt: skip
            node.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        for node in self.nodes:
            client = redis.Redis(port=node.port, socket_connect_timeout=0.2)
            try:
                wait_until(lambda c=client: _pings(c), timeout=10)
            finally:
                client.close()
        cli = shutil.which("redis-cli")
        assert cli is not None, "redis-cli comes with redis-server"
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for node in self.nodes:
            client = redis.Redis(port=node.port)
            try:
                wait_until(
                    lambda c=client: _cluster_ok(c),
                    timeout=30,
                )
            finally:
                client.close()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _cluster_ok(client: redis.Redis) -> bool:
    info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text or "'cluster_state': 'ok'" in text
