"""A room's game state and what changed since it was last published.

States are copy-on-write (``tickrelay.protocol.apply_patch`` never mutates), so the snapshot
last sent is kept as plain references and a tick's delta is computed only for the players touched
since then. Sans-I/O: the tick loop calls ``publish`` and fans the frame out.
"""

from __future__ import annotations

from typing import Any

import msgpack

from tickrelay.protocol import apply_patch, diff, now_ms
from tickrelay.server.wire import StateFrame

_MISSING: Any = object()


class StateTooLarge(Exception):
    """A change would push a state past its size bound (answered with ``too_large``)."""


def encoded_size(value: Any) -> int:
    return len(msgpack.packb(value, use_bin_type=True))


class RoomState:
    """Players' states, the shared room state and the acks, plus the last published frame."""

    def __init__(self, max_player_bytes: int, max_room_bytes: int) -> None:
        self.max_player_bytes = max_player_bytes
        self.max_room_bytes = max_room_bytes
        self.players: dict[str, Any] = {}
        self.room: Any = {}
        self.acks: dict[str, int] = {}
        self._touched: set[str] = set()
        self._acks_touched: set[str] = set()
        # The same room object as the current state: a new room has nothing to publish, and
        # a room with nothing to publish must not tick (``dirty`` compares identities).
        self.last_frame = StateFrame(0, None, now_ms(), {}, self.room, {})

    @property
    def dirty(self) -> bool:
        return bool(self._touched or self._acks_touched) or self.room is not self.last_frame.room

    def restore(self, tick: int, players: dict[str, Any], room: Any, acks: dict[str, int]) -> None:
        """Start again from a saved frame, published anew at ``tick`` with no base: every
        client's next state is a snap."""
        self.players = dict(players)
        self.room = room
        self.acks = dict(acks)
        self._touched.clear()
        self._acks_touched.clear()
        self.last_frame = StateFrame(tick, None, now_ms(), dict(players), room, dict(acks))

    # Seats -------------------------------------------------------------------------------

    def add_player(self, pid: str) -> None:
        self.players[pid] = {}
        self.acks[pid] = 0
        self._touched.add(pid)
        self._acks_touched.add(pid)

    def remove_player(self, pid: str) -> None:
        self.players.pop(pid, None)
        self.acks.pop(pid, None)
        self._touched.add(pid)
        self._acks_touched.add(pid)

    # Changes -----------------------------------------------------------------------------

    def patched_player(self, pid: str, patch: dict[str, Any]) -> Any:
        """The player's state after ``patch``, checked against its bound but not stored."""
        new = apply_patch(self.players[pid], patch)
        if encoded_size(new) > self.max_player_bytes:
            raise StateTooLarge(f"player state over {self.max_player_bytes} bytes")
        return new

    def patched_room(self, patch: Any) -> Any:
        new = apply_patch(self.room, patch)
        if encoded_size(new) > self.max_room_bytes:
            raise StateTooLarge(f"room state over {self.max_room_bytes} bytes")
        return new

    def set_player(self, pid: str, state: Any) -> None:
        if self.players[pid] is state:
            return  # a patch that changed nothing returns its target: no change to publish
        self.players[pid] = state
        self._touched.add(pid)

    def set_room(self, state: Any) -> None:
        self.room = state

    def ack(self, pid: str, seq: int) -> None:
        if pid in self.acks and self.acks[pid] != seq:
            self.acks[pid] = seq
            self._acks_touched.add(pid)

    # Publishing --------------------------------------------------------------------------

    def publish(self, tick: int) -> StateFrame | None:
        """The frame for ``tick`` when anything changed since the last one, else None."""
        last = self.last_frame
        patch: dict[str, Any] = {}
        players_patch = self._players_patch(last.players)
        if players_patch:
            patch["players"] = players_patch
        if self.room is not last.room:
            room_patch = diff(last.room, self.room)
            if room_patch != {}:
                patch["room"] = room_patch
            else:  # equal on the wire: keep the published object, or the room stays dirty
                self.room = last.room
        acks_patch = self._acks_patch(last.acks)
        self._touched.clear()
        self._acks_touched.clear()
        if not patch and not acks_patch:
            return None
        frame = StateFrame(
            tick,
            last.tick,
            now_ms(),
            dict(self.players),
            self.room,
            dict(self.acks),
            patch,
            acks_patch,
        )
        self.last_frame = frame
        return frame

    def _players_patch(self, sent: dict[str, Any]) -> dict[str, Any]:
        players = self.players
        out: dict[str, Any] = {}
        for pid in self._touched:
            old = sent.get(pid, _MISSING)
            new = players.get(pid, _MISSING)
            if new is _MISSING:
                if old is not _MISSING:
                    out[pid] = None
            elif old is _MISSING:
                out[pid] = new
            elif old is not new:
                change = diff(old, new)
                if change != {}:
                    out[pid] = change
        return out

    def _acks_patch(self, sent: dict[str, int]) -> dict[str, int | None]:
        acks = self.acks
        out: dict[str, int | None] = {}
        for pid in self._acks_touched:
            new = acks.get(pid)
            if sent.get(pid) != new or (new is not None and pid not in sent):
                out[pid] = new
        return out
