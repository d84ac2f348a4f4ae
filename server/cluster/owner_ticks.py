"""When a room's owner ticks, as seen from a worker that forwards inputs to it (sans-I/O).

A forwarded input is only used at the owner's next tick, so it need not leave before
shortly ahead of that tick: the inputs of every room whose next tick is the same instant
then share one publish, and the owner (and Redis) wake once for them rather than every few
milliseconds. The instant is read off the states themselves: an owner publishes a room's
state right after its tick, so a state's arrival is the tick time plus the trip here.
Owner ticks never drift (tick ``n`` is due at ``t0 + n / rate``), so one arrival predicts
all later ticks; the earliest arrival seen is the closest to the real tick (a busy loop
only ever reads a state late), and the estimate follows a later one only by ``CREEP`` per
state, enough for any clock drift and too little for a late read to move it much.

No clock is read here: times are the caller's (the event loop's), passed in.
"""

from __future__ import annotations

import math

#: How far one state arriving later than predicted moves the estimate (seconds).
CREEP = 0.0001


class OwnerTicks:
    """An estimate of one remote room's tick times; None until its first state."""

    __slots__ = ("_at", "period", "rate")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.period = 1.0 / rate
        self._at: float | None = None  # a past tick time (plus the trip here)

    def state_arrived(self, now: float) -> None:
        """A state of the room was read at ``now``."""
        at = self._at
        if at is None:
            self._at = now
            return
        period = self.period
        predicted = at + round((now - at) / period) * period
        self._at = now if now < predicted else min(now, predicted + CREEP)

    def due(self, now: float, lead: float) -> float | None:
        """When an input forwarded at ``now`` must leave to reach the owner ``lead``
        seconds before its next tick; None while no state has been seen."""
        at = self._at
        if at is None:
            return None
        period = self.period
        ticks = math.floor((now + lead - at) / period) + 1
        return at + ticks * period - lead
