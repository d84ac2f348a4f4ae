"""A manual clock and a recording member link: the room core tested without a socket or loop.

As python-websockets tests its sans-I/O ``Protocol``: messages in (joins, inputs, drops,
time advanced by hand), messages out (what each fake link was sent).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from tickrelay.protocol import LeaveReason
from tickrelay.server.members import Member
from tickrelay.server.metrics import TickStats
from tickrelay.server.room import Room, RoomLimits, RoomOptions
from tickrelay.server.tokens import ResumeTokens
from tickrelay.server.wire import StateFrame, Wire


class ManualTimer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Time moves only by ``advance``, which fires the callbacks due, in order, at their time."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> ManualTimer:
        return self.call_at(self._now + max(delay, 0.0), callback, *args)

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> ManualTimer:
        timer = ManualTimer(max(when, self._now), callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def spend(self, seconds: float) -> None:
        """Time passes without firing anything (work done inside a callback)."""
        self._now += seconds

    def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback(*timer.args)
        self._now = max(self._now, target)

    @property
    def pending(self) -> int:
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)


class FakeLink:
    """A ``MemberLink`` that records what it was sent and how it was closed."""

    def __init__(self, backlog: list[Wire] | None = None) -> None:
        self.reliable: list[dict[str, Any]] = []
        self.states: list[StateFrame] = []
        self.closed: tuple[int, str] | None = None
        self.backlog = list(backlog or ())

    def push_state(self, frame: StateFrame) -> None:
        self.states.append(frame)

    def push_reliable(self, wire: Wire) -> None:
        self.reliable.append(wire.message)

    def send_error(self, code: Any, msg: str, ref: int | str | None = None) -> None:
        self.reliable.append({"t": "error", "code": str(code), "msg": msg, "ref": ref})

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def take_reliable(self) -> list[Wire]:
        backlog, self.backlog = self.backlog, []
        return backlog

    @property
    def queued_bytes(self) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {}

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.reliable if message["t"] == kind]

    @property
    def kinds(self) -> list[str]:
        return [message["t"] for message in self.reliable]


class Harness:
    """A started room on a manual clock, and helpers to join and drop fake members."""

    def __init__(self, clock: ManualClock, room: Room) -> None:
        self.clock = clock
        self.room = room
        self.links: dict[str, FakeLink] = {}
        self.members: dict[str, Member] = {}

    def join(
        self,
        pid: str,
        spectator: bool = False,
        resume: str | None = None,
        spectate_only: bool = False,
    ) -> FakeLink:
        link = FakeLink()
        member = self.room.join(link, pid, spectator, resume, spectate_only)
        self.links[pid] = link
        self.members[pid] = member
        return link

    def drop(self, pid: str) -> None:
        self.room.connection_ended(self.members[pid], self.links[pid], None)

    def end(self, pid: str, reason: LeaveReason) -> None:
        self.room.connection_ended(self.members[pid], self.links[pid], reason)

    def resume(self, pid: str) -> FakeLink:
        return self.join(pid, resume=self.members[pid].resume_token)

    def tick(self) -> None:
        """Let one tick period pass (the tick due in it runs)."""
        self.clock.advance(1.0 / self.room.options.tick_rate)


def make_room(
    logic: str = "relay",
    max_players: int = 16,
    max_spectators: int = 64,
    tick_rate: int = 16,
    **limits: Any,
) -> Harness:
    """A started room; the default rate is a power of two so tick times are exact floats."""
    clock = ManualClock()
    options = RoomOptions(
        tick_rate=tick_rate, max_players=max_players, max_spectators=max_spectators, logic=logic
    )
    room = Room(
        "core", options, RoomLimits(**limits), ResumeTokens(), TickStats(), lambda _: None, clock
    )
    room.start()
    return Harness(clock, room)
