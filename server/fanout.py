"""Reliable fan-out: one encoded message to many members, connected or away.

Connected members get it in their link's reliable queue now; away members keep it in their
gap for a resume. A gap that overflows ends that member's place, which the caller does
after the loop (never while iterating over the roster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tickrelay.server.members import Member, Roster
from tickrelay.server.wire import Wire

Keep = Callable[[Member, Wire], bool]


def to_all(roster: Roster, wire: Wire, keep: Keep, exclude: str | None = None) -> list[Member]:
    """Deliver to every member but ``exclude`` (a pid); returns the members whose gap overflowed."""
    for pid, link in roster.links.items():
        if pid != exclude:
            link.push_reliable(wire)
    if not roster.away:
        return []
    return [x for pid, x in roster.away.items() if pid != exclude and not keep(x, wire)]


def to_some(roster: Roster, wire: Wire, pids: Iterable[str], keep: Keep) -> list[Member]:
    """Deliver to the listed members that exist, once each; returns the overflowed."""
    links = roster.links
    away = roster.away
    overflowed: list[Member] = []
    for pid in dict.fromkeys(pids):
        link = links.get(pid)
        if link is not None:
            link.push_reliable(wire)
        else:
            member = away.get(pid)
            if member is not None and not keep(member, wire):
                overflowed.append(member)
    return overflowed
