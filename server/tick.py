"""The tick loop: one task per room that runs ``Room.step`` on a monotonic schedule.

Tick ``n`` is due at ``t0 + n / rate``: ticks do not drift, and a late tick runs late with
its lag measured rather than being skipped silently. A room whose logic is passive and
that has nothing pending sleeps until woken; its tick number still tells the time after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from server.metrics import TickStats

log = logging.getLogger("tickrelay.tick")


class TickLoop:
    """Owns the tick task of one room: started with the room, cancelled and awaited with it."""

    def __init__(
        self,
        rate: int,
        step: Callable[[int, float], None],
        busy: Callable[[], bool],
        stats: TickStats,
    ) -> None:
        self.rate = rate
        self.period = 1.0 / rate
        self._step = step
        self._busy = busy
        self._stats = stats
        self._t0 = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_tick = 0

    @property
    def current(self) -> int:
        """The tick number now: tick periods elapsed since the room was created."""
        return int((time.monotonic() - self._t0) * self.rate)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tick-loop")

    def wake(self) -> None:
        """Something is pending (an input, a seat change): make sure the next tick runs."""
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        period = self.period
        while True:
            if not self._busy():
                self._wake.clear()
                await self._wake.wait()
            due_tick = max(self.current + 1, self.last_tick + 1)
            due = self._t0 + due_tick * period
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.monotonic()
            tick = max(int((started - self._t0) * self.rate), due_tick)
            lag = started - (self._t0 + tick * period)
            dt = (tick - self.last_tick) * period
            self.last_tick = tick
            try:
                self._step(tick, dt)
            except Exception:
                log.exception("tick %d failed", tick)
            self._stats.record(lag if lag > 0 else 0.0, time.monotonic() - started)
