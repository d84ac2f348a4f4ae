"""The two seams between a room and the connections it serves.

A room talks to its members only through ``MemberLink``; a connection talks to its room
only through ``RoomLink``. Today both ends live in this worker (``Connection`` and
``Room``); a member connected to another worker, or a room owned by another worker, plugs
in by implementing the same interface over the backplane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tickrelay.protocol import ErrorCode, Event, Input, LeaveReason

if TYPE_CHECKING:
    from tickrelay.server.members import Member
    from tickrelay.server.wire import StateFrame, Wire


class MemberLink(Protocol):
    """What a room needs from a member's connection. Every method returns at once."""

    def push_state(self, frame: StateFrame) -> None:
        """Latest wins: a frame not yet written is replaced by this one."""

    def push_reliable(self, wire: Wire) -> None:
        """Queue in order; an overflow closes the link with 4011."""

    def send_error(self, code: ErrorCode, msg: str, ref: int | str | None = None) -> None: ...

    def close(self, code: int, reason: str) -> None:
        """Close now; the room hears of the end through ``RoomLink.connection_ended``."""

    def take_reliable(self) -> list[Wire]:
        """Hand over what was not written yet (a takeover carries it to the new link)."""

    @property
    def queued_bytes(self) -> int:
        """What the server holds for this member, for the HTTP API."""

    def stats(self) -> dict[str, int]:
        """Queue and traffic figures for ``GET /rooms/{id}/connections``."""


class RoomLink(Protocol):
    """What a connection needs from its room once joined; ``member`` is the join's handle."""

    def receive_input(self, member: Member, message: Input) -> None: ...

    def receive_event(self, member: Member, message: Event) -> None: ...

    def leave(self, member: Member) -> None:
        """The member leaves for good (a ``leave`` message)."""

    def connection_ended(
        self, member: Member, link: MemberLink, reason: LeaveReason | None
    ) -> None:
        """The link is gone: ``reason`` None is a drop (the place waits for a resume)."""
