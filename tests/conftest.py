"""Shared fixtures: real tickrelay servers as subprocesses on free loopback ports.

Each distinct set of settings gets one server for the whole session (started on first
use). At the end of the session every server is stopped and its log is checked for the
signs of sloppy task handling: a test run that leaks tasks or sockets fails.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# Re-exported for tests written before tests/helpers.py held it; import it from there.

ADMIN = "test-admin-token"
SECRET = "test-secret-that-is-long-enough-for-hs256!"
BAD_LOG_SIGNS = (
    "Task exception was never retrieved",
    "was never awaited",
    "Task was destroyed but it is pending",
    "ResourceWarning",
    "Exception in ASGI application",
    "Traceback",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A running server: where to reach it, and its log."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    settings: dict[str, Any]

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _env_for(settings: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRELAY_")}
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | tuple):
            value = ",".join(value)
        env[f"TICKRELAY_{key.upper()}"] = str(value)
    env["PYTHONWARNINGS"] = "always::ResourceWarning,always::RuntimeWarning"
    return env


def start_server(settings: dict[str, Any], log_dir: Path) -> ServerProcess:
    port = free_port()
    # Tests make rooms from one address far faster than any client should (a test about
    # the creation rate sets its own), and a test server stops at once unless the test
    # asks for a drain.
    merged = {
        "admin_token": ADMIN,
        "log_level": "warning",
        "room_create_rate": 1000,
        "drain_seconds": 0,
        **settings,
    }
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tickrelay.server.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=_env_for(merged),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
    server = ServerProcess(port, process, log_path, merged)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{server.log()}")
        try:
            if httpx.get(f"{server.http}/healthz", timeout=0.5).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"server did not start:\n{server.log()}")


def stop_server(server: ServerProcess) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


class ServerPool:
    """Starts one server per distinct settings and stops them all at the end."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._servers: dict[tuple[tuple[str, Any], ...], ServerProcess] = {}
        self.private: list[ServerProcess] = []

    def get(self, **settings: Any) -> ServerProcess:
        key = tuple(sorted((k, str(v)) for k, v in settings.items()))
        if key not in self._servers:
            self._servers[key] = start_server(settings, self._log_dir)
        return self._servers[key]

    def fresh(self, **settings: Any) -> ServerProcess:
        """A server of its own, for a test that stops it or must not share it."""
        server = start_server(settings, self._log_dir)
        self.private.append(server)
        return server

    def stop_all(self) -> list[tuple[ServerProcess, list[str]]]:
        problems = []
        for server in [*self._servers.values(), *self.private]:
            stop_server(server)
            text = server.log()
            found = [sign for sign in BAD_LOG_SIGNS if sign in text]
            if found:
                problems.append((server, found))
        return problems


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("servers"))
    yield pool
    problems = pool.stop_all()
    if problems:
        details = "\n\n".join(
            f"server {s.settings} log has {found}:\n{s.log()[-4000:]}" for s, found in problems
        )
        pytest.fail(f"server logs show leaked tasks or errors:\n{details}", pytrace=False)


@pytest.fixture(scope="session")
def server(servers: ServerPool) -> ServerProcess:
    """The default server: open (no auth), in-memory backplane, contract defaults."""
    return servers.get()


_room_serials = itertools.count(1)


@pytest.fixture
def room_id(request: pytest.FixtureRequest) -> str:
    """A room id unique to the test, so tests sharing a server never share a room."""
    name = request.node.name.replace("[", "-").replace("]", "")
    cleaned = "".join(c if c.isalnum() or c in "_-" else "-" for c in name)
    # The serial keeps ids apart where the port alone did not: parametrized cases share
    # their first 40 characters, and a free port may come back within a session.
    return f"{cleaned[:40]}-{next(_room_serials)}-{free_port()}"


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server the tests start; fails (never skips) with what to install."""
    from tests.redis_support import RedisNotFound, find_redis_server

    try:
        return find_redis_server()
    except RedisNotFound as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[Any]:
    """A redis-server of the test's own on a free port (never the machine's 6379)."""
    from tests.redis_support import RedisServer

    server = RedisServer(tmp_path, redis_binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def redis_client(redis_server: Any) -> AsyncIterator[Any]:
    """A redis.asyncio client of that server (timeouts short: a test must not hang)."""
    import redis.asyncio as aioredis

    connection = aioredis.Redis.from_url(redis_server.url, socket_timeout=1.0)
    yield connection
    await connection.aclose()
