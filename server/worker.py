"""What a worker started by the supervisor (``serve --workers N``) does differently.

It binds its own listening socket with ``SO_REUSEPORT`` on the shared host:port, so the
kernel spreads new connections over the workers and none of them has to pass sockets
around; it tells the supervisor when it serves (a byte on an inherited pipe), so a rolling
restart can wait for a successor before it stops the old worker; it prefixes its log lines
with its index; and it exits when its supervisor dies, so a ``kill -9`` of the supervisor
never leaves workers holding the port.
"""

from __future__ import annotations

import copy
import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from tickrelay.server.drain import DrainingServer

INDEX_ENV = "TICKRELAY_WORKER_INDEX"
SUPERVISOR_PID_ENV = "TICKRELAY_SUPERVISOR_PID"
READY_FD_ENV = "TICKRELAY_READY_FD"
READY_BYTE = b"r"
PR_SET_PDEATHSIG = 1
PARENT_POLL_SECONDS = 1.0


def worker_index() -> int | None:
    """This process's index under a supervisor, or None when it serves alone."""
    value = os.environ.get(INDEX_ENV)
    return int(value) if value else None


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other workers may bind too (``SO_REUSEPORT``)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.set_inheritable(False)
    except OSError:
        sock.close()
        raise
    return sock


def log_config(index: int) -> dict[str, Any]:
    """uvicorn's logging, each line prefixed with the worker's index and pid.

    tickrelay's own loggers get the same handler: without one their records would reach
    Python's last-resort handler, unprefixed, and several workers' lines could not be told
    apart.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    prefix = f"worker {index} [{os.getpid()}]:"
    for formatter in config["formatters"].values():
        formatter["fmt"] = formatter["fmt"].replace("%(levelprefix)s", f"%(levelprefix)s {prefix}")
    config["loggers"]["tickrelay"] = {"handlers": ["default"], "propagate": False}
    return config


def _exit_with_parent(supervisor_pid: int) -> None:
    """SIGTERM this worker (a drain, then exit) when its supervisor dies, however it dies.

    On Linux the kernel sends it (``PR_SET_PDEATHSIG``); the check after it covers a
    supervisor that died before the call. Elsewhere a daemon thread watches the parent pid.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != supervisor_pid:
            sys.exit("tickrelay: error: the supervisor is gone")
        return
    threading.Thread(target=_watch_parent, args=(supervisor_pid,), daemon=True).start()


def _watch_parent(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


class WorkerServer(DrainingServer):
    """A ``DrainingServer`` that tells its supervisor once it serves."""

    def __init__(self, *args: Any, ready_fd: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ready_fd = ready_fd

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._ready_fd is not None:
            fd, self._ready_fd = self._ready_fd, None
            os.write(fd, READY_BYTE)
            os.close(fd)


@dataclass(frozen=True)
class ChildWorker:
    """The settings a supervisor hands its worker through the environment."""

    index: int
    supervisor_pid: int
    ready_fd: int | None

    @classmethod
    def from_environment(cls) -> ChildWorker | None:
        index = worker_index()
        supervisor = os.environ.get(SUPERVISOR_PID_ENV)
        if index is None or not supervisor:
            return None
        ready = os.environ.get(READY_FD_ENV)
        return cls(index, int(supervisor), int(ready) if ready else None)

    def exit_with_parent(self) -> None:
        _exit_with_parent(self.supervisor_pid)

    def serve(
        self, config: uvicorn.Config, drain_seconds: float, start_draining: Callable[[], None]
    ) -> int:
        """Serve on a ``SO_REUSEPORT`` socket of its own; 2 when the port cannot be had."""
        try:
            sock = reuseport_socket(config.host, config.port)
        except OSError as exc:
            where = f"{config.host}:{config.port}"
            print(f"tickrelay: error: cannot listen on {where}: {exc}", file=sys.stderr)
            return 2
        server = WorkerServer(config, drain_seconds, start_draining, ready_fd=self.ready_fd)
        with sock:
            server.run(sockets=[sock])
        return 0
