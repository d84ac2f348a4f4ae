"""The servers under test: a spec table, and a process wrapper that always cleans up.

A `ServerSpec` says how to start one configuration (argv, env, which CPUs) and whether it
can run here (`available()` returns a reason when not). Rows for later configurations (the
Redis backplane with 1 and 2 workers) are already in the table and skip themselves until
their pieces exist.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from tickrelay.loadtest.redisproc import RedisNotFound, RedisServer, find_redis_server

#: The repository root (holds `server/`, `loadtest/`); servers run with it as cwd.
REPO_ROOT = Path(__file__).resolve().parent.parent


def _module(module: str, *extra: str) -> Callable[[str, int], list[str]]:
    def argv(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", module, *extra, "--host", host, "--port", str(port)]

    return argv


REF_ENV = "TICKRELAY_BENCH_REF_CMD"
"""The command (without --host/--port) that serves a reference build of tickrelay, e.g. an
older checkout: `PYTHONPATH=/tmp/old python -m server.cli serve`. Comparing it with this
checkout in one run, servers taking turns, is how a change to the hot path is judged: CPU
time on this machine drifts by more than the few percent such a change costs."""


def _ref_argv(host: str, port: int) -> list[str]:
    return [*shlex.split(os.environ[REF_ENV]), "--host", host, "--port", str(port)]


def _ref_available() -> str | None:
    return None if os.environ.get(REF_ENV) else f"set {REF_ENV} to the reference's serve command"


def importable(module: str) -> str | None:
    """None when `module` imports in a fresh interpreter at the repo root, else why not.

    A subprocess, not `importlib`: loadtest never imports `server/` (design notes), and a
    half-written server must not break the bench process.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=server_env({}),
        )
    except subprocess.TimeoutExpired:
        return f"importing {module} timed out"
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return f"{module} is not importable ({lines[-1] if lines else 'exit ' + str(proc.returncode)})"


def reachable(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _tickrelay_available() -> str | None:
    return importable("tickrelay.server.cli")


def _redis_available() -> str | None:
    reason = importable("tickrelay.server.cluster.registry")
    if reason is not None:
        return f"the Redis cluster is not importable: {reason}"
    try:
        find_redis_server()
    except RedisNotFound as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class ServerSpec:
    """One server configuration the bench can start."""

    name: str
    description: str
    argv: Callable[[str, int], list[str]]
    available: Callable[[], str | None] = lambda: None
    env: dict[str, str] = field(default_factory=dict)
    cpus: str = "0"
    metrics_path: str | None = None
    default: bool = True
    #: Serve with a redis-server of its own (TICKRELAY_REDIS_URL), pinned to the same
    #: cores; its CPU and memory count as the server's.
    redis: bool = False
    #: Independent copies, each on a port of its own and pinned alike; the load spreads
    #: the rooms over them in turn. Their CPU and memory add up.
    copies: int = 1


TICKRELAY_ENV = {"TICKRELAY_LOG_LEVEL": "warning", "TICKRELAY_ROOM_CREATE_RATE": "1000000"}
"""The load tester makes every room from one address, far faster than a client may."""

SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        ServerSpec(
            "tutorial",
            "FastAPI tutorial pattern: ConnectionManager per room, every input broadcast at "
            "once with a sequential `await ws.send_bytes()` loop (uvicorn, 1 process)",
            _module("tickrelay.loadtest.baselines.tutorial"),
        ),
        ServerSpec(
            "tutorial-ticked",
            "the same stack with a 20 Hz tick loop per room sending the state to each "
            "member in turn (uvicorn, 1 process)",
            _module("tickrelay.loadtest.baselines.tutorial_ticked"),
        ),
        ServerSpec(
            "floor",
            "`websockets` asyncio server on uvloop, state encoded once per tick, "
            "`websockets.broadcast()` (1 process)",
            _module("tickrelay.loadtest.baselines.floor"),
        ),
        ServerSpec(
            "tickrelay",
            "tickrelay, in-memory backplane, 1 process",
            _module("tickrelay.server.cli", "serve"),
            available=_tickrelay_available,
            env=TICKRELAY_ENV,
            metrics_path="/stats",
        ),
        ServerSpec(
            "tickrelay-ref",
            f"tickrelay, a reference build (the command in {REF_ENV}), in-memory, 1 process",
            _ref_argv,
            available=_ref_available,
            env=TICKRELAY_ENV,
            metrics_path="/stats",
            default=False,
        ),
        ServerSpec(
            "tickrelay-2proc",
            "tickrelay, in-memory, 2 independent processes sharing the server core, rooms "
            "alternating between them: what a second process costs before any sharing",
            _module("tickrelay.server.cli", "serve"),
            available=_tickrelay_available,
            env=TICKRELAY_ENV,
            metrics_path="/stats",
            default=False,
            copies=2,
        ),
        ServerSpec(
            "tickrelay-redis-1w",
            "tickrelay, Redis backplane, 1 worker",
            _module("tickrelay.server.cli", "serve", "--workers", "1"),
            available=_redis_available,
            redis=True,
            env=TICKRELAY_ENV,
            metrics_path="/stats",
            default=False,
        ),
        ServerSpec(
            "tickrelay-redis-2w",
            "tickrelay, Redis backplane, 2 workers sharing the server core",
            _module("tickrelay.server.cli", "serve", "--workers", "2"),
            available=_redis_available,
            redis=True,
            env=TICKRELAY_ENV,
            metrics_path="/stats",
            default=False,
        ),
    )
}


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment plus the repo root on PYTHONPATH plus the spec's variables."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerStartError(RuntimeError):
    """The server exited or did not listen in time; the message holds its log's tail."""


class ServerProcess:
    """A started server: its own session (Ctrl-C reaches only us), pinned, logged to a file.

    `stop()` is idempotent and always leaves no process behind: SIGTERM to the process
    group, a grace period, then SIGKILL.
    """

    def __init__(self, spec: ServerSpec, host: str, port: int, log: Path, pin: bool) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.log_path = log
        self.pin = pin
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.redis: RedisServer | None = None
        self.redis_ps: psutil.Process | None = None
        self.copies = [
            ServerProcess(replace(spec, copies=1), host, free_port(host),
                          log.with_name(f"{log.stem}-copy{n}{log.suffix}"), pin)
            for n in range(1, spec.copies)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """The load's URL: every copy's, comma-separated."""
        return ",".join(f"ws://{s.host}:{s.port}" for s in (self, *self.copies))

    def start(self, timeout: float = 30.0) -> None:
        """Start (each copy too) and wait until the ports accept connections."""
        for copy in self.copies:
            copy.start(timeout)
        argv = self.spec.argv(self.host, self.port)
        env = server_env(self.spec.env)
        if self.spec.redis:
            self.redis = RedisServer(self.log_path.parent)
            self.redis.start(cpus=self.spec.cpus if self.pin else None)
            assert self.redis.process is not None
            self.redis_ps = psutil.Process(self.redis.process.pid)
            env["TICKRELAY_REDIS_URL"] = self.redis.url
        taskset = shutil.which("taskset")
        if self.pin and taskset:
            argv = [taskset, "-c", self.spec.cpus, *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.pin and not taskset:
            with contextlib.suppress(OSError):
                cpus = {int(c) for c in self.spec.cpus.split(",")}
                os.sched_setaffinity(self.proc.pid, cpus)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + timeout
        while not reachable(self.host, self.port):
            if self.proc.poll() is not None:
                raise ServerStartError(f"{self.spec.name} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerStartError(f"{self.spec.name} did not listen: {self.log_tail()}")
            time.sleep(0.1)

    def _tree(self) -> list[psutil.Process]:
        """The server, its children (workers), its own redis-server and its copies."""
        others = [self.redis_ps] if self.redis_ps is not None else []
        for copy in self.copies:
            others.extend(copy._tree())
        if self.ps is None:
            return others
        try:
            return [self.ps, *self.ps.children(recursive=True), *others]
        except psutil.Error:
            return others

    @property
    def exited(self) -> bool:
        """Whether the server, or any copy, is gone."""
        gone = self.proc is None or self.proc.poll() is not None
        return gone or any(copy.exited for copy in self.copies)

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its children so far."""
        total = 0.0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the server and its children."""
        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def log_tail(self, lines: int = 8) -> str:
        """Last lines of the server's output (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the whole process group and wait for it, then its Redis and copies."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop_group(proc, grace)
        self._stop_redis()
        for copy in self.copies:
            copy.stop(grace)

    def _stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.kill()
        self.redis = self.redis_ps = None

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace``; children that outlived the
    leader (worker processes) go too."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
