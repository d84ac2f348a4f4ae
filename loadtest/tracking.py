"""Per-connection bookkeeping of state messages: input-to-ack latency, gaps, skipped ticks.

Pure (no sockets, no clock reads: the caller passes `now`), so the contract-sensitive parts
are unit-testable. It never mirrors the room state: for latency a player only needs its own
entry of `acks`, which is a full map in `snap` and a merge patch of changed entries in
`delta` (absent = unchanged, `null` = the player left).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from tickrelay.loadtest.stats import Histogram


class AckTracker:
    """Inputs sent and not yet acknowledged, oldest first.

    The latency of input N runs from sending it to the first state message whose ack for
    this player is >= N. A refused input is therefore "acknowledged" by the next applied one,
    as the contract's ack semantics imply (only applied inputs move the ack).
    """

    __slots__ = ("_pending", "ack")

    def __init__(self) -> None:
        self._pending: deque[tuple[int, float]] = deque()
        self.ack = 0

    def sent(self, seq: int, now: float) -> None:
        """Remember that `seq` left at `now` (seqs must increase)."""
        self._pending.append((seq, now))

    @property
    def pending(self) -> int:
        """How many inputs are still waiting for their ack."""
        return len(self._pending)

    def acked(self, ack: int, now: float, into: Histogram) -> int:
        """Record latencies of every pending input with seq <= `ack`; return how many."""
        if ack > self.ack:
            self.ack = ack
        pending = self._pending
        n = 0
        while pending and pending[0][0] <= ack:
            into.record(now - pending.popleft()[1])
            n += 1
        return n

    def censor(self, now: float, older_than: float, into: Histogram) -> int:
        """Record the age of every pending input older than `older_than` seconds.

        Used once, at the end of the measured window: an input the server never acked
        would otherwise never show up in the latency figures, and a server that stops
        acking altogether would look fast. The age is a lower bound of its latency.
        """
        n = 0
        for _seq, sent in self._pending:
            age = now - sent
            if age <= older_than:
                break
            into.record(age)
            n += 1
        return n

    def forget(self) -> int:
        """Drop every pending input (the connection they went out on is gone); return how many."""
        n = len(self._pending)
        self._pending.clear()
        return n


class StateTracker:
    """What one connection learns from the `snap`/`delta` stream it receives."""

    __slots__ = (
        "acks",
        "base_mismatches",
        "last_arrival",
        "last_tick",
        "pid",
        "skipped",
        "states",
    )

    def __init__(self, pid: str | None = None) -> None:
        self.pid = pid
        self.acks = AckTracker()
        self.last_tick: int | None = None
        self.last_arrival: float | None = None
        self.skipped = 0
        self.states = 0
        self.base_mismatches = 0

    def reset_stream(self) -> None:
        """Forget tick continuity (a new connection starts a new stream; acks carry over)."""
        self.last_tick = None
        self.last_arrival = None

    def on_state(
        self,
        msg: Mapping[str, Any],
        now: float,
        latency: Histogram,
        gaps: Histogram,
    ) -> int:
        """Account one `snap` or `delta`; return the number of ticks skipped before it.

        Skipped ticks are gaps in tick numbers. A server that sends nothing on a tick that
        changed nothing also shows up here, so this figure is only meaningful while every
        tick changes something (players sending at >= the tick rate).
        """
        self.states += 1
        tick = msg.get("tick")
        skipped = 0
        if isinstance(tick, int):
            last = self.last_tick
            if last is not None:
                if tick - last > 1:
                    skipped = tick - last - 1
                    self.skipped += skipped
                if msg.get("t") == "delta" and msg.get("base") != last:
                    self.base_mismatches += 1
            self.last_tick = tick
        if self.last_arrival is not None:
            gaps.record(now - self.last_arrival)
        self.last_arrival = now
        acks = msg.get("acks")
        if acks and self.pid is not None:
            ack = acks.get(self.pid)
            if type(ack) is int:
                self.acks.acked(ack, now, latency)
        return skipped
