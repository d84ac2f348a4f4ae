"""Resume grace (contract section 8): a dropped member's place waits, and so do its messages.

While a member is away, the reliable messages it would have got wait in its gap, bounded
like a connection's reliable queue; a gap that overflows ends the place (the member could
not be given a gapless resume), and so does the end of the grace.
"""

from __future__ import annotations

from collections.abc import Callable

from tickrelay.server.clock import Clock
from tickrelay.server.members import Member
from tickrelay.server.room_options import RoomLimits
from tickrelay.server.wire import Wire


class ResumeGrace:
    """Starts and ends the grace of away members and keeps their gaps."""

    def __init__(self, clock: Clock, limits: RoomLimits, expire: Callable[[Member], None]) -> None:
        self._now = clock.now
        self._call_later = clock.call_later
        self._period = limits.resume_grace
        self._max_messages = limits.gap_messages
        self._max_bytes = limits.gap_bytes
        self._expire = expire

    @property
    def enabled(self) -> bool:
        return self._period > 0

    def start(self, member: Member, period: float | None = None) -> None:
        """The member went away: its gap starts empty and its grace runs out in time
        (``period``: what is left of a grace that began on another worker)."""
        period = self._period if period is None else period
        member.gap.clear()
        member.gap_bytes = 0
        member.away_until = self._now() + period
        member.grace = self._call_later(period, self._over, member)

    def remaining(self, member: Member) -> float:
        """Seconds left of an away member's grace (0 when none runs)."""
        return max(member.away_until - self._now(), 0.0) if member.grace is not None else 0.0

    def end(self, member: Member) -> list[Wire]:
        """The grace is over (a resume, or the place ended): what the gap kept, in order."""
        if member.grace is not None:
            member.grace.cancel()
            member.grace = None
        kept = list(member.gap)
        member.gap.clear()
        member.gap_bytes = 0
        return kept

    def keep(self, member: Member, wire: Wire) -> bool:
        """Keep a message for an away member; False when its gap is full (the place ends)."""
        gap = member.gap
        size = wire.size
        if len(gap) >= self._max_messages or member.gap_bytes + size > self._max_bytes:
            return False
        gap.append(wire)
        member.gap_bytes += size
        return True

    def _over(self, member: Member) -> None:
        member.grace = None
        self._expire(member)
