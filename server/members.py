"""Who is in a room: members, their seats and spectator places, connected or away.

The roster keeps two views that the room's fan-outs read without a check per member: the
links of connected members (the tick sends its frame to each) and the members away inside
their resume grace (reliable messages wait in their gaps).
"""

from __future__ import annotations

import itertools
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any

from tickrelay.protocol import CloseCode
from tickrelay.server.refusal import JoinRefusal

if TYPE_CHECKING:
    from tickrelay.server.clock import Timer
    from tickrelay.server.links import MemberLink
    from tickrelay.server.wire import Wire


class SeatRefused(JoinRefusal):
    """No seat or spectator place is free (4009)."""

    def __init__(self, reason: str) -> None:
        super().__init__(CloseCode.ROOM_FULL, reason)


class MemberState(Enum):
    CONNECTED = "connected"
    AWAY = "away"  # dropped, inside the resume grace: the place waits


CONNECTED = MemberState.CONNECTED
AWAY = MemberState.AWAY


class Member:
    """A player or spectator of a room; ``link`` is set exactly while it is CONNECTED."""

    __slots__ = (
        "away_until",
        "gap",
        "gap_bytes",
        "grace",
        "last_seq",
        "link",
        "order",
        "pid",
        "resume_token",
        "spectator",
        "state",
    )

    def __init__(self, pid: str, spectator: bool, order: int, link: MemberLink | None) -> None:
        self.pid = pid
        self.spectator = spectator
        self.order = order
        self.state = CONNECTED
        self.link: MemberLink | None = link
        self.resume_token = ""
        self.gap: deque[Wire] = deque()
        self.gap_bytes = 0
        self.grace: Timer | None = None
        self.away_until = 0.0  # the room clock's time its grace ends, while AWAY
        self.last_seq = 0

    def describe(self) -> dict[str, Any]:
        """For ``GET /rooms/{id}/connections``: what the server holds for this member."""
        entry: dict[str, Any] = {
            "pid": self.pid,
            "spectator": self.spectator,
            "away": self.state is AWAY,
            "gap_messages": len(self.gap),
            "gap_bytes": self.gap_bytes,
        }
        if self.link is not None:
            entry["queued_bytes"] = self.link.queued_bytes
            entry.update(self.link.stats())
        return entry


class Roster:
    """A room's members by pid, its seat and place counts, and the join order."""

    def __init__(self, max_players: int, max_spectators: int) -> None:
        self.max_players = max_players
        self.max_spectators = max_spectators
        self.members: dict[str, Member] = {}
        self.links: dict[str, MemberLink] = {}  # connected members only
        self.away: dict[str, Member] = {}  # members inside their resume grace
        self.seated = 0
        self.spectators = 0
        self._order = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.members)

    def holds(self, member: Member) -> bool:
        """Whether ``member`` still has its place (not removed, not replaced)."""
        return self.members.get(member.pid) is member

    def check_place(self, spectator: bool) -> None:
        if spectator:
            if self.spectators >= self.max_spectators:
                raise SeatRefused("no spectator place free")
        elif self.seated >= self.max_players:
            raise SeatRefused("room full")

    def add(self, pid: str, spectator: bool, link: MemberLink) -> Member:
        member = Member(pid, spectator, next(self._order), link)
        self.members[pid] = member
        self.links[pid] = link
        if spectator:
            self.spectators += 1
        else:
            self.seated += 1
        return member

    def restore(self, pid: str, spectator: bool, order: int) -> Member:
        """A member brought back from a checkpoint: away until its link comes back."""
        member = Member(pid, spectator, order, None)
        member.state = AWAY
        self.members[pid] = member
        self.away[pid] = member
        if spectator:
            self.spectators += 1
        else:
            self.seated += 1
        self._order = itertools.count(max(next(self._order), order + 1))
        return member

    def connect(self, member: Member, link: MemberLink) -> None:
        member.state = CONNECTED
        member.link = link
        self.links[member.pid] = link
        self.away.pop(member.pid, None)

    def disconnect(self, member: Member) -> None:
        member.state = AWAY
        member.link = None
        self.links.pop(member.pid, None)
        self.away[member.pid] = member

    def remove(self, member: Member) -> None:
        del self.members[member.pid]
        self.links.pop(member.pid, None)
        self.away.pop(member.pid, None)
        if member.spectator:
            self.spectators -= 1
        else:
            self.seated -= 1

    def clear(self) -> None:
        self.members.clear()
        self.links.clear()
        self.away.clear()
