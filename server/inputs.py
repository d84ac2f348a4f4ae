"""Inputs from receipt to the tick: the checks on receipt, the queue, and the undo journal.

An input is checked when it arrives (spectator, stale seq, room patch by a non-host) and
applied at the next tick by the room logic's ``on_input``. A refused input leaves no trace:
every player state it touched and the room state are put back, and its seq does not count
for the stale check (contract section 2, "received and not refused").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tickrelay.protocol import ErrorCode, Input
from tickrelay.server.host import HostRole
from tickrelay.server.logic import InputRefused, RoomLogic
from tickrelay.server.members import Member, Roster
from tickrelay.server.state import RoomState, StateTooLarge

if TYPE_CHECKING:
    from collections.abc import Callable

    Refuse = Callable[[Member, ErrorCode, str, int], None]

log = logging.getLogger("tickrelay.room")


class InputQueue:
    """The inputs waiting for the next tick, and the journal of the one being applied."""

    def __init__(
        self, state: RoomState, room_id: str, host: HostRole, wake: Callable[[], None]
    ) -> None:
        self._state = state
        self._room_id = room_id
        self._host = host
        self._wake = wake
        self._pending: list[tuple[Member, Input]] = []
        # While on_input runs: the player states it changed, as they were before.
        self._journal: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self._pending)

    def receive(self, member: Member, message: Input) -> None:
        """``RoomLink.receive_input`` of the room (bound to it as is: one call per input):
        the checks made on receipt; the input itself is applied at the next tick."""
        if member.spectator:
            code, msg = ErrorCode.SPECTATOR, "spectators cannot send input"
        elif message.seq <= member.last_seq:
            code, msg = ErrorCode.STALE, f"seq must be above {member.last_seq}"
        elif message.room is not None and self._host.pid != member.pid:
            code, msg = ErrorCode.NOT_HOST, "only the host may patch the room"
        else:
            member.last_seq = message.seq
            self._pending.append((member, message))
            self._wake()
            return
        link = member.link
        if link is not None:
            link.send_error(code, msg, message.seq)

    def apply_all(self, logic: RoomLogic, roster: Roster, refuse: Refuse) -> None:
        """Apply the queued inputs in arrival order (those of members still in the room)."""
        pending, self._pending = self._pending, []
        members = roster.members
        for member, message in pending:
            if members.get(member.pid) is member:
                self._apply(logic, member, message, refuse)

    def _apply(self, logic: RoomLogic, member: Member, message: Input, refuse: Refuse) -> None:
        pid = member.pid
        state = self._state
        before_room = state.room
        self._journal = journal = {}
        try:
            logic.on_input(pid, message.d, message.room)
        except StateTooLarge as exc:
            self._undo(journal, before_room)
            refuse(member, ErrorCode.TOO_LARGE, str(exc), message.seq)
        except InputRefused as exc:
            self._undo(journal, before_room)
            refuse(member, ErrorCode.BAD_MESSAGE, str(exc) or "input refused", message.seq)
        except Exception:
            log.exception("room %s: on_input failed", self._room_id)
            self._undo(journal, before_room)
            refuse(member, ErrorCode.BAD_MESSAGE, "input refused by the room", message.seq)
        else:
            state.ack(pid, message.seq)
            return
        finally:
            self._journal = None
        # Unless a later input of this player is pending, the stale bar is back at its ack.
        if member.last_seq == message.seq:
            member.last_seq = state.acks.get(pid, 0)

    def remember(self, pid: str) -> None:
        """Inside ``on_input``: keep the player's state as it was, for an undo."""
        journal = self._journal
        players = self._state.players
        if journal is not None and pid not in journal and pid in players:
            journal[pid] = players[pid]

    def _undo(self, journal: dict[str, Any], room: Any) -> None:
        players = self._state.players
        for pid, player in journal.items():
            if pid in players:
                players[pid] = player
        self._state.room = room
