"""The tick loop: one timer per room that runs ``Room.step`` on a monotonic schedule.

Tick ``n`` is due at ``t0 + n / rate``: ticks do not drift, and a late tick runs late with
its lag measured rather than being skipped silently. In a cluster ``t0`` lies on a grid of
``TICK_PHASES`` points per period (of the monotonic clock, which every process of a host
shares), so the rooms of one rate tick in a few shared loop turns. A room whose logic is
passive and that has nothing pending sleeps until woken; its tick number still tells the
time after.

Each tick is a plain timer callback rather than a step of a task: no task, future or event
per tick, which at a thousand players is a few percent of the server's CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from tickrelay.server.clock import Clock, Timer
from tickrelay.server.metrics import TickStats

if TYPE_CHECKING:
    from tickrelay.server.wire import StateFrame

log = logging.getLogger("tickrelay.tick")


class TickState(Enum):
    SLEEPING = "sleeping"  # no tick scheduled: ``wake`` schedules one
    SCHEDULED = "scheduled"
    RUNNING = "running"  # inside the step: the tick after is decided when it returns
    STOPPED = "stopped"


SLEEPING = TickState.SLEEPING
SCHEDULED = TickState.SCHEDULED
RUNNING = TickState.RUNNING
STOPPED = TickState.STOPPED


#: Aligned rooms of one rate tick at this many instants per period (see ``_start_at``).
TICK_PHASES = 2


class TickLoop:
    """Owns the tick timer of one room: started with the room, cancelled with it."""

    def __init__(
        self,
        rate: int,
        step: Callable[[int, float], StateFrame | None],
        busy: Callable[[], bool],
        stats: TickStats,
        clock: Clock,
        aligned: bool = False,
    ) -> None:
        self.rate = rate
        self.period = 1.0 / rate
        self._step = step
        self._busy = busy
        self._stats = stats
        self._now = clock.now
        self._call_later = clock.call_later
        self._aligned = aligned
        self._t0 = self._start_at(self._now())
        self._timer: Timer | None = None
        self._due_tick = 0
        # When the first input waiting for the next tick arrived (None: none waits).
        self._inputs_since: float | None = None
        self.state = SLEEPING
        self.last_tick = 0

    @property
    def elapsed(self) -> float:
        """Seconds since tick 0 (a room's clock, which the cluster directory publishes)."""
        return self._now() - self._t0

    @property
    def current(self) -> int:
        """The tick number now: tick periods elapsed since the room was created."""
        return int((self._now() - self._t0) * self.rate)

    def carry_on(self, elapsed: float, after_tick: int) -> int:
        """Continue a room's clock from another worker: tick 0 was ``elapsed`` seconds ago
        and no tick number up to ``after_tick`` is used again. The tick of this period may
        have been published by the former owner just before it stopped (a drain hands
        over within one period), so the new clock starts at the next one."""
        self._t0 = self._start_at(self._now() - elapsed)
        self.last_tick = max(self.current + 1, after_tick + 1)
        return self.last_tick

    def _start_at(self, t0: float) -> float:
        """Tick 0: ``t0``, or with ``aligned`` the grid point at or before it.

        In a cluster the rooms of one rate then tick in ``TICK_PHASES`` loop turns per
        period, and an owner sends the states of all the rooms of a phase to a worker in
        one publish, not one per room; the inputs forwarded to it leave together just
        ahead of a phase too. Each phase costs every worker and Redis a wake-up per period,
        which on a shared core costs more than the Python around it. One grid point per
        period would publish fewest, but the burst of every room's step in one turn delays
        the last room's players (tick lag p99 19 ms against 4 ms at 63 rooms, p99 latency
        +10 ms); two phases halve the burst, and against four they cut the publishes from
        about 140 to 100 a second per worker at 25 rooms, for a tick lag p99 of 4.6 ms
        against 2.2 and a latency p99 2-3 ms higher. One process keeps its rooms' ticks
        spread over the period. Moving tick 0 earlier only ever moves tick numbers forward.
        """
        if not self._aligned:
            return t0
        grid = self.rate * TICK_PHASES
        return math.floor(t0 * grid) / grid

    def start(self) -> None:
        if self._busy():
            self._schedule()

    def wake(self) -> None:
        """Something is pending (an input, a seat change): make sure the next tick runs."""
        if self.state is SLEEPING:
            self._schedule()

    def input_arrived(self) -> None:
        """``wake`` for an input: the first one of a tick's batch also stamps its arrival,
        so the input-to-ack time costs one clock read per tick, not one per input."""
        if self._inputs_since is None:
            self._inputs_since = self._now()
        if self.state is SLEEPING:
            self._schedule()

    async def stop(self) -> None:
        self.state = STOPPED
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _schedule(self) -> None:
        self._due_tick = due_tick = max(self.current + 1, self.last_tick + 1)
        delay = self._t0 + due_tick * self.period - self._now()
        self.state = SCHEDULED
        self._timer = self._call_later(max(delay, 0.0), self._tick)

    def _tick(self) -> None:
        self._timer = None
        started = self._now()
        tick = max(int((started - self._t0) * self.rate), self._due_tick)
        lag = started - (self._t0 + tick * self.period)
        dt = (tick - self.last_tick) * self.period
        self.last_tick = tick
        self.state = RUNNING
        frame = None
        try:
            frame = self._step(tick, dt)
        except Exception:
            log.exception("tick %d failed", tick)
        ended = self._now()
        stats = self._stats
        stats.record(lag if lag > 0 else 0.0, ended - started)
        since = self._inputs_since
        if since is not None:  # the step applied them: this tick's state carries the acks
            self._inputs_since = None
            stats.inputs_waited(ended - since)
        if frame is not None:
            stats.state_sent(frame)
        if self.state is RUNNING:  # not stopped by the step
            self.state = SLEEPING
            if self._busy():
                self._schedule()
