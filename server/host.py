"""The host role (contract section 5): who may patch the room state.

The first seated player takes it; when the host leaves or goes away it passes to the
connected seated player who joined first; while every seated player is away nobody holds
it, and the next seated player to connect (a join, a takeover or a resume) takes it.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickrelay.server.members import CONNECTED, Member


class HostRole:
    """Who holds the role; the room announces every change (``host`` message)."""

    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid: str | None = None

    def claim(self, member: Member) -> bool:
        """A seated player arriving takes a free role; True when it did."""
        if self.pid is not None or member.spectator:
            return False
        self.pid = member.pid
        return True

    def pass_on(self, members: Iterable[Member]) -> bool:
        """The holder is gone or away: the next by join order takes it; True on a change."""
        candidates = [x for x in members if not x.spectator and x.state is CONNECTED]
        successor = min(candidates, key=lambda x: x.order).pid if candidates else None
        changed = successor != self.pid
        self.pid = successor
        return changed
