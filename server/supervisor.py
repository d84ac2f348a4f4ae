"""``tickrelay serve --workers N``: N worker processes on one port, kept alive.

The supervisor serves nothing and holds no connection. Each worker is a whole ``tickrelay
serve`` (the one-process path, ``DrainingServer`` and all), started as ``python -m
tickrelay.server.cli serve`` with every setting in its environment, and binds the shared
port itself with ``SO_REUSEPORT`` (see ``worker.py``): the kernel spreads connections, so
nothing here touches a socket. The supervisor restarts a worker that dies, after a backoff
and within a bound per minute, so a crash loop costs little and logs one line per death;
forwards SIGTERM/SIGINT so every worker drains as a single process would, and kills the
stragglers after the stop timeout; and on SIGHUP replaces the workers one at a time, each
successor serving before its predecessor drains.

It is a plain loop that polls ten times a second: a supervisor has nothing to do faster,
and signal handlers that only record the signal keep every decision in one place.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType

from uvicorn.config import LOG_LEVELS
from uvicorn.logging import DefaultFormatter

from tickrelay.server.settings import Settings
from tickrelay.server.worker import INDEX_ENV, READY_BYTE, READY_FD_ENV, SUPERVISOR_PID_ENV

log = logging.getLogger("tickrelay.supervisor")

POLL_SECONDS = 0.1
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
"""A worker that lived this long died of something new: its backoff starts over."""
RESTARTS_PER_WORKER_PER_MINUTE = 5
ENV_PREFIX = "TICKRELAY_"
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOPPED_CODES = (0, -signal.SIGTERM, -signal.SIGINT)
"""How a worker that drained ends: uvicorn re-raises the signal it handled."""


class Phase(enum.Enum):
    STARTING = "starting"  # not every worker has served yet: a start-up failure is fatal
    RUNNING = "running"
    STOPPING = "stopping"


class ChildState(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"  # signalled by the supervisor: its exit is expected
    KILLED = "killed"  # did not stop within the stop timeout


@dataclass
class Child:
    """One worker process and what the supervisor knows of it."""

    index: int
    generation: int
    process: subprocess.Popen[bytes]
    ready_pipe: int
    started_at: float
    state: ChildState = ChildState.STARTING
    stop_deadline: float = float("inf")

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ending(self) -> bool:
        """Whether the supervisor asked it to end, so its exit is no failure."""
        return self.state in (ChildState.STOPPING, ChildState.KILLED)


def settings_environment(settings: Settings) -> dict[str, str]:
    """``TICKRELAY_*`` variables that rebuild ``settings`` in a worker (flags included)."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list):
            value = ",".join(value)
        env[ENV_PREFIX + name.upper()] = str(value)
    env[ENV_PREFIX + "WORKERS"] = "1"
    return env


def child_environment(settings: Settings, index: int, ready_fd: int) -> dict[str, str]:
    """Our environment without its settings variables (settings read them case-blind, and
    an unset one must stay unset), plus the settings and the worker's identity."""
    names = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(settings_environment(settings))
    env[INDEX_ENV] = str(index)
    env[SUPERVISOR_PID_ENV] = str(os.getpid())
    env[READY_FD_ENV] = str(ready_fd)
    return env


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class RestartPolicy:
    """How long a dead worker waits: doubling per slot from 0.5 s to 30 s (reset by a life
    of 30 s), and never more restarts in a minute than a few per worker."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._failures: dict[int, int] = {}
        self._booked: list[float] = []

    def delay(self, index: int, lived: float, now: float) -> tuple[float, bool]:
        """Seconds until ``index`` restarts, and whether the bound per minute lengthened it."""
        failures = 0 if lived >= STABLE_AFTER else self._failures.get(index, 0)
        self._failures[index] = failures + 1
        delay = min(BACKOFF_FIRST * 2**failures, BACKOFF_MAX)
        self._booked = [at for at in self._booked if at > now - 60]
        bounded = len(self._booked) >= self._per_minute
        if bounded:
            delay = max(delay, min(self._booked) + 60 - now)
        self._booked.append(now + delay)
        return delay, bounded


def configure_logging(level: str) -> None:
    """The supervisor's lines look like uvicorn's, prefixed ``supervisor:``."""
    handler = logging.StreamHandler()
    handler.setFormatter(DefaultFormatter("%(levelprefix)s supervisor: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(LOG_LEVELS.get(level, logging.INFO))
    log.propagate = False


class Supervisor:
    """Starts ``settings.workers`` workers and keeps them so until a signal says stop."""

    def __init__(self, settings: Settings, stop_timeout: float) -> None:
        self._settings = settings
        self._workers = settings.workers
        self._stop_timeout = stop_timeout
        self._phase = Phase.STARTING
        self._children: list[Child] = []
        self._due: dict[int, float] = {}
        self._signals: deque[int] = deque()
        self._policy = RestartPolicy(RESTARTS_PER_WORKER_PER_MINUTE * settings.workers)
        self._generation = 0
        self._rolling: deque[int] = deque()
        self._roll_after_start = False
        self._exit_code = 0

    def run(self) -> int:
        configure_logging(self._settings.log_level)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED_SIGNALS}
        try:
            where = f"{self._settings.host}:{self._settings.port}"
            log.info("starting %d workers on %s (pid %d)", self._workers, where, os.getpid())
            for index in range(self._workers):
                self._spawn(index)
            while self._phase is not Phase.STOPPING or self._children:
                self._step(time.monotonic())
                time.sleep(POLL_SECONDS)
        finally:
            self._kill_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("all workers stopped")
        return self._exit_code

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        """Runs in the signal handler: records the signal only."""
        self._signals.append(sig)

    def _step(self, now: float) -> None:
        while self._signals:
            self._on_signal_received(self._signals.popleft(), now)
        self._reap(now)
        self._collect_ready()
        self._start_due(now)
        self._roll(now)
        self._kill_overdue(now)

    def _on_signal_received(self, sig: int, now: float) -> None:
        if sig == signal.SIGHUP:
            self._begin_roll()
        else:
            self._stop_all(sig, now)

    def _spawn(self, index: int) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        try:
            # A process group of its own: a Ctrl-C in the terminal reaches the supervisor
            # alone, which forwards it once (a second signal would cut a worker's drain).
            process = subprocess.Popen(
                [sys.executable, "-m", "tickrelay.server.cli", "serve"],
                env=child_environment(self._settings, index, write_fd),
                pass_fds=(write_fd,),
                process_group=0,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        child = Child(index, self._generation, process, read_fd, time.monotonic())
        self._children.append(child)
        log.info("worker %d started (pid %d)", index, child.pid)

    def _reap(self, now: float) -> None:
        for child in list(self._children):
            code = child.process.poll()
            if code is not None:
                self._children.remove(child)
                os.close(child.ready_pipe)
                self._on_exit(child, code, now)

    def _on_exit(self, child: Child, code: int, now: float) -> None:
        if child.ending:
            ended = "stopped" if code in STOPPED_CODES else describe_exit(code)
            log.info("worker %d (pid %d) %s", child.index, child.pid, ended)
            return
        if self._phase is Phase.STARTING and child.state is ChildState.STARTING and code > 0:
            log.error("worker %d %s at start: stopping", child.index, describe_exit(code))
            self._exit_code = code
            self._stop_all(signal.SIGTERM, now)
            return
        if any(c.index == child.index and not c.ending for c in self._children):
            log.warning(
                "worker %d (pid %d) %s; its successor serves",
                child.index,
                child.pid,
                describe_exit(code),
            )
            return
        delay, bounded = self._policy.delay(child.index, now - child.started_at, now)
        self._due[child.index] = now + delay
        log.warning(
            "worker %d (pid %d) %s after %.1f s; restarting it in %.1f s%s",
            child.index,
            child.pid,
            describe_exit(code),
            now - child.started_at,
            delay,
            " (restart limit per minute reached)" if bounded else "",
        )

    def _collect_ready(self) -> None:
        for child in self._children:
            if child.state is ChildState.STARTING and self._read_ready(child):
                child.state = ChildState.SERVING
                log.info("worker %d (pid %d) serving", child.index, child.pid)
        serving = {c.index for c in self._children if c.state is ChildState.SERVING}
        if self._phase is Phase.STARTING and len(serving) == self._workers:
            self._phase = Phase.RUNNING
            log.info("all %d workers serving", self._workers)
            if self._roll_after_start:
                self._roll_after_start = False
                self._begin_roll()

    @staticmethod
    def _read_ready(child: Child) -> bool:
        try:
            return os.read(child.ready_pipe, 1) == READY_BYTE
        except BlockingIOError:
            return False

    def _start_due(self, now: float) -> None:
        for index, at in list(self._due.items()):
            if at <= now:
                del self._due[index]
                try:
                    self._spawn(index)
                except OSError as exc:  # out of processes or memory: try again later
                    log.error("cannot start worker %d: %s; trying again in %.0f s",
                              index, exc, BACKOFF_MAX)  # fmt: skip
                    self._due[index] = now + BACKOFF_MAX

    def _stop_all(self, sig: int, now: float) -> None:
        """The first signal drains every worker; a second one stops them at once (a worker
        already draining, e.g. in a rolling restart, gets only the second)."""
        name = signal.Signals(sig).name
        again = self._phase is Phase.STOPPING
        if again:
            log.warning("%s again: the workers stop without waiting for their drain", name)
        else:
            log.info("%s: stopping %d workers", name, len(self._children))
        self._phase = Phase.STOPPING
        self._due.clear()
        self._rolling.clear()
        for child in self._children:
            if again or not child.ending:
                self._signal(child, sig, now)

    def _signal(self, child: Child, sig: int, now: float) -> None:
        if not child.ending:
            child.state = ChildState.STOPPING
            child.stop_deadline = now + self._stop_timeout
        child.process.send_signal(sig)

    def _kill_overdue(self, now: float) -> None:
        for child in self._children:
            if child.state is ChildState.STOPPING and now >= child.stop_deadline:
                log.warning(
                    "worker %d (pid %d) did not stop within %.1f s: killing it",
                    child.index,
                    child.pid,
                    self._stop_timeout,
                )
                child.process.kill()
                child.state = ChildState.KILLED

    def _kill_all(self) -> None:
        """Only reached with workers alive when the loop itself failed: no orphans even then."""
        for child in self._children:
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait()
            os.close(child.ready_pipe)
        self._children.clear()

    def _begin_roll(self) -> None:
        if self._phase is Phase.STARTING:
            self._roll_after_start = True  # a deploy's SIGHUP right after a start is kept
            log.info("SIGHUP: the workers are starting; restarting them once they serve")
            return
        if self._phase is not Phase.RUNNING or self._rolling:
            busy = "already restarting" if self._rolling else self._phase.value
            log.warning("SIGHUP ignored: the workers are %s", busy)
            return
        self._generation += 1
        self._rolling.extend(range(self._workers))
        log.info("SIGHUP: restarting the %d workers one at a time", self._workers)

    def _roll(self, now: float) -> None:
        """One slot at a time: start its successor, and once that serves, drain the old one."""
        if not self._rolling:
            return
        index = self._rolling[0]
        slot = [c for c in self._children if c.index == index]
        old = [c for c in slot if c.generation < self._generation]
        new = [c for c in slot if c.generation == self._generation]
        if not old:
            self._rolling.popleft()
            if not self._rolling:
                log.info("rolling restart done")
        elif not new and index not in self._due:
            self._spawn(index)
        elif any(c.state is ChildState.SERVING for c in new):
            for child in old:
                if not child.ending:
                    self._signal(child, signal.SIGTERM, now)
