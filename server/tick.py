"""The tick loop: runs ``Room.step`` of one room on a monotonic schedule.

Tick ``n`` is due at ``t0 + n / rate``: ticks do not drift, and a late tick runs late with
its lag measured rather than being skipped silently. In a cluster a room ticks at instants
of its worker's ``Phase`` (of the monotonic clock, which every process of a host shares):
the worker's rooms of one rate with members elsewhere tick in one loop turn, their states
in one publish. A room whose logic is passive and that has nothing pending sleeps until
woken; its tick number still tells the time after.

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


class Lane(Enum):
    """Which instants of its worker's ``Phase`` a cluster room ticks at."""

    HOME = "home"  # two a period: nobody on another worker gets the room's states
    SHARED = "shared"  # the worker's one instant: other workers get its states


HOME = Lane.HOME
SHARED = Lane.SHARED


class Phase:
    """Where in each period the rooms of a cluster worker tick, and the loop timers they
    share: one per instant.

    Each worker ticks its rooms whose states go to other workers (``SHARED``) at one
    instant of the period, its own ``fraction``, and the workers' fractions lie apart
    (``ClusterNode`` sets it from its boot number). An owner then sends the states of all
    those rooms to a worker in one publish a period, and the inputs forwarded to it leave
    together just ahead of that instant: two publishes a period between two workers, each
    way, against four when every worker's rooms ticked at two instants shared by all.
    Every publish costs the sender, Redis and the receiver a wake-up, which on a shared
    core costs more than the Python around it. A worker's burst of steps falls while the
    other workers are quiet, so a shared core sees no more load at a time.

    A room with no member elsewhere publishes nothing per tick, and one burst of every
    room of a worker costs its players latency (p50 and p99 +3 to +6 ms at 63 rooms on
    one worker) and some CPU: such rooms tick at two instants a period (``HOME``: the
    fraction and half a period after it) until their first member on another worker.

    The rooms of one instant share a loop timer because uvloop's timers have millisecond
    resolution: a timer per room, each set in a different loop turn, fires the rooms of one
    instant over two turns, and their states then leave in two publishes. One process
    needs none of this and keeps its rooms' ticks spread over the period.
    """

    __slots__ = ("_call_at", "_due", "fraction")

    def __init__(self, clock: Clock, fraction: float = 0.0) -> None:
        self._call_at = clock.call_at
        self._due: dict[int, list[_Shared]] = {}  # instant (in units of QUANTUM) -> timers
        self.fraction = fraction

    def start_at(self, t0: float, rate: int, lane: Lane) -> float:
        """The last instant of ``lane`` at or before ``t0`` (tick 0 of a room). A ``t0``
        on an instant already (up to float error) stays there."""
        grid = rate if lane is SHARED else 2 * rate
        offset = self.fraction / rate
        return math.floor((t0 - offset) * grid + 1e-6) / grid + offset

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """``callback`` at ``when``, in the same loop turn as every other one due then."""
        timer = _Shared(callback)
        key = round(when / QUANTUM)  # rooms' sums of t0 and n periods differ in the last bits
        due = self._due.get(key)
        if due is None:
            self._due[key] = [timer]
            self._call_at(when, self._fire, key)
        else:
            due.append(timer)
        return timer

    def _fire(self, key: int) -> None:
        for timer in self._due.pop(key, ()):
            if not timer.cancelled:
                try:
                    timer.callback()
                except Exception:  # as the loop would for a timer of its own: the rest run
                    log.exception("a tick timer failed")


#: Instants closer than this are one instant for ``Phase``'s shared timers (seconds).
QUANTUM = 0.0001


class _Shared:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TickLoop:
    """Owns the tick timer of one room: started with the room, cancelled with it."""

    def __init__(
        self,
        rate: int,
        step: Callable[[int, float], StateFrame | None],
        busy: Callable[[], bool],
        stats: TickStats,
        clock: Clock,
        phase: Phase | None = None,
    ) -> None:
        self.rate = rate
        self.period = 1.0 / rate
        self._step = step
        self._busy = busy
        self._stats = stats
        self._now = clock.now
        self._call_at = clock.call_at if phase is None else phase.call_at
        self._phase = phase
        self.lane = HOME
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
        """Tick 0: ``t0``, or with a phase the last instant of the phase at or before it.
        Moving tick 0 earlier only ever moves tick numbers forward."""
        phase = self._phase
        return t0 if phase is None else phase.start_at(t0, self.rate, self.lane)

    def share(self) -> None:
        """Other workers get this room's states from now on: tick at the worker's shared
        instant (see ``Phase``). Tick 0 moves earlier by half a period at most (by up to a
        period for a room made before the worker's phase was known), so the next tick may
        come that much sooner, its number one more than it would have been."""
        if self._phase is None or self.lane is SHARED:
            return
        self.lane = SHARED
        self._t0 = self._start_at(self._t0)
        timer = self._timer
        if timer is not None:  # scheduled, for the old instant
            timer.cancel()
            self._schedule()

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
        self.state = SCHEDULED
        self._timer = self._call_at(self._t0 + due_tick * self.period, self._tick)

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
