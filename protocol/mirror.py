"""Client-side copy of a room's state, rebuilt from ``snap`` and ``delta`` messages."""

from __future__ import annotations

from typing import Any

from .patch import apply_patch

__all__ = ["MirrorError", "StateMirror"]


class MirrorError(Exception):
    """A state message cannot be applied (a delta on a base we do not hold, or a
    malformed message): the mirror is unchanged and the client should resync, e.g. by
    reconnecting with ``resume`` to get a fresh ``snap``."""


class StateMirror:
    """Holds the last state received; updates are atomic (all fields or none).

    States share subtrees with earlier states and with the messages they came from
    (copy-on-write, see ``tickrelay.protocol.patch``): treat them as read-only.
    """

    __slots__ = ("acks", "players", "room", "tick")

    def __init__(self) -> None:
        self.tick: int | None = None
        self.players: dict[str, Any] = {}
        self.room: Any = {}
        self.acks: dict[str, int] = {}

    @property
    def state(self) -> dict[str, Any]:
        """The snapshot ``{"players": ..., "room": ...}`` of ``tick``, as in a ``snap``."""
        return {"players": self.players, "room": self.room}

    def apply(self, msg: dict[str, Any]) -> bool:
        """Apply a ``snap`` or ``delta``; return False (and change nothing) for any other
        message, so a client can feed it every message it receives."""
        kind = msg.get("t")
        if kind == "snap":
            self._apply_snap(msg)
            return True
        if kind == "delta":
            self._apply_delta(msg)
            return True
        return False

    def last_ack(self, pid: str) -> int:
        """The last ``seq`` of ``pid`` the server applied (0 before any), for prediction."""
        return self.acks.get(pid, 0)

    def _apply_snap(self, msg: dict[str, Any]) -> None:
        tick, s, acks = msg.get("tick"), msg.get("s"), msg.get("acks")
        if type(tick) is not int or not isinstance(s, dict) or not isinstance(acks, dict):
            raise MirrorError("malformed snap")
        players = s.get("players")
        if not isinstance(players, dict):
            raise MirrorError("malformed snap: players is not a map")
        self.tick, self.players, self.room, self.acks = tick, players, s.get("room"), acks

    def _apply_delta(self, msg: dict[str, Any]) -> None:
        if self.tick is None or msg.get("base") != self.tick:
            raise MirrorError(f"delta base {msg.get('base')!r} is not the held tick {self.tick!r}")
        tick, d, acks = msg.get("tick"), msg.get("d"), msg.get("acks", {})
        if type(tick) is not int or not isinstance(d, dict) or not isinstance(acks, dict):
            raise MirrorError("malformed delta")
        state = apply_patch(self.state, d)
        players = state.get("players")
        if not isinstance(players, dict):
            raise MirrorError("malformed delta: players is not a map")
        new_acks = apply_patch(self.acks, acks)
        self.tick, self.players, self.room, self.acks = tick, players, state.get("room"), new_acks
