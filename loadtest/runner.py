"""The parent side of a load run: spawns the driver processes, gathers their seconds.

The parent does no networking itself; it merges the workers' per-second stats, calls the
live display, and tells a `WindowProbe` when the measurement window opens and closes (the
bench samples the server's CPU and memory there). Every worker process is stopped, joined
and, if it does not exit in time, terminated and then killed, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from tickrelay.loadtest.config import LoadConfig
from tickrelay.loadtest.interval import IntervalStats
from tickrelay.loadtest.worker import worker_main

#: Seconds the workers get to import and build their players before the start signal.
READY_TIMEOUT = 60.0
#: Seconds after the window's end before we stop waiting for the workers' final words.
FINAL_GRACE = 20.0


class WindowProbe(Protocol):
    """Told when the measured window opens and closes (on the parent's event loop)."""

    def window_start(self) -> None:
        """The first measured second begins."""

    def window_end(self) -> None:
        """The last measured second ended."""


class DriverCrashed(RuntimeError):
    """A driver process raised; the message holds its traceback."""


@dataclass
class RunResult:
    """Everything the report is built from."""

    cfg: LoadConfig
    intervals: dict[int, IntervalStats] = field(default_factory=dict)
    finals: list[dict[str, Any]] = field(default_factory=list)
    parent_cpu: float = 0.0
    driver_cores: int = 1
    started_at: float = 0.0

    def window_stats(self) -> IntervalStats:
        """All measured seconds merged (gauges taken from the last measured second)."""
        start, end = self.cfg.window
        merged = IntervalStats()
        for k in range(start, end):
            if k in self.intervals:
                merged.merge(self.intervals[k].to_dict())
        last = self.intervals.get(end - 1)
        merged.connected = last.connected if last else 0
        return merged


def driver_cores() -> int:
    """CPUs this process may run on (its affinity, e.g. 1 when the bench pins it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


class _Collector:
    """Receives worker messages on the event loop and merges intervals."""

    def __init__(self, workers: int, on_interval: Callable[[int, IntervalStats], None] | None):
        self.workers = workers
        self.on_interval = on_interval
        self.parts: dict[int, list[dict[str, Any]]] = {}
        self.result_intervals: dict[int, IntervalStats] = {}
        self.ready: set[int] = set()
        self.finals: dict[int, dict[str, Any]] = {}
        self.gone: set[int] = set()
        self.crash: str | None = None
        self.changed = asyncio.Event()

    def handle(self, w: int, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ready":
            self.ready.add(w)
        elif kind == "interval":
            k = int(msg[2])
            parts = self.parts.setdefault(k, [])
            parts.append(msg[3])
            if len(parts) >= self.workers - len(self.gone):
                self._emit(k)
        elif kind == "final":
            self.finals[w] = msg[2]
        elif kind == "crash":
            self.crash = f"driver worker {w} crashed:\n{msg[2]}"
        self.changed.set()

    def eof(self, w: int) -> None:
        self.gone.add(w)
        self.changed.set()

    def _emit(self, k: int) -> None:
        merged = IntervalStats.merged(self.parts.pop(k))
        self.result_intervals[k] = merged
        if self.on_interval is not None:
            self.on_interval(k, merged)

    def flush(self) -> None:
        for k in sorted(self.parts):
            self._emit(k)

    async def wait(self, predicate: Callable[[], bool], deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        while not predicate():
            if self.crash is not None:
                raise DriverCrashed(self.crash)
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self.changed.wait()
        return True


async def run_load(
    cfg: LoadConfig,
    *,
    on_interval: Callable[[int, IntervalStats], None] | None = None,
    probe: WindowProbe | None = None,
) -> RunResult:
    """Run `cfg` with `cfg.workers` driver processes; return the merged measurements."""
    loop = asyncio.get_running_loop()
    ctx = mp.get_context("spawn")
    collector = _Collector(cfg.workers, on_interval)
    pipes: list[Connection] = []
    procs: list[BaseProcess] = []
    probe_task: asyncio.Task[float] | None = None
    result = RunResult(cfg=cfg, driver_cores=driver_cores())

    def reader(w: int, pipe: Connection) -> Callable[[], None]:
        def on_readable() -> None:
            try:
                while pipe.poll():
                    collector.handle(w, pipe.recv())
            except (EOFError, OSError):
                loop.remove_reader(pipe.fileno())
                collector.eof(w)

        return on_readable

    try:
        for w in range(cfg.workers):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main,
                args=(cfg, w, child_end),
                name=f"tickrelay-loadtest-worker-{w}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            pipes.append(parent_end)
            procs.append(proc)
            loop.add_reader(parent_end.fileno(), reader(w, parent_end))
        ok = await collector.wait(
            lambda: len(collector.ready | collector.gone) >= cfg.workers,
            loop.time() + READY_TIMEOUT,
        )
        if not ok or collector.gone:
            raise DriverCrashed(collector.crash or "driver workers did not start")
        t0 = time.time() + 0.2
        result.started_at = t0
        for pipe in pipes:
            pipe.send(("start", t0))
        start, end = cfg.window
        probe_task = asyncio.create_task(_window(probe, t0 + start, t0 + end))
        await collector.wait(
            lambda: len(collector.finals.keys() | collector.gone) >= cfg.workers,
            loop.time() + (t0 - time.time()) + end + FINAL_GRACE,
        )
        if collector.crash is not None:
            raise DriverCrashed(collector.crash)
        result.parent_cpu = await probe_task
        probe_task = None
    finally:
        if probe_task is not None:
            probe_task.cancel()
            with contextlib.suppress(BaseException):
                await probe_task
        for pipe in pipes:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(pipe.fileno())
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("stop",))
        _reap(procs)
        for pipe in pipes:
            pipe.close()
    collector.flush()
    result.intervals = collector.result_intervals
    result.finals = [collector.finals[w] for w in sorted(collector.finals)]
    return result


async def _window(probe: WindowProbe | None, start_wall: float, end_wall: float) -> float:
    """Call the probe at the window's edges; return the parent's CPU seconds inside it."""
    await asyncio.sleep(max(0.0, start_wall - time.time()))
    if probe is not None:
        probe.window_start()
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, end_wall - time.time()))
    if probe is not None:
        probe.window_end()
    return time.process_time() - cpu0


def _reap(procs: list[BaseProcess], timeout: float = 5.0) -> None:
    """Join the workers; terminate, then kill, the ones that do not exit in time."""
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join()
        p.close()
