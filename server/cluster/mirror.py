"""A worker's copy of a room owned elsewhere, rebuilt into ``StateFrame``s (sans-I/O).

The owner sends each tick's delta once per worker, as the bytes it encoded for its own
clients. The worker applies it to its mirror and builds the same ``StateFrame`` the owner
fanned out, with the delta's bytes preset, so its local outboxes pick a delta or a snap
per client exactly as on the owner (a client that skipped ticks gets a snap of the
mirror). A delta whose base is not the mirror's tick breaks the chain: the worker asks
the owner for a snap and its clients wait for it.
"""

from __future__ import annotations

from typing import Any

import msgpack

from tickrelay.protocol import MirrorError, StateMirror
from tickrelay.server.wire import StateFrame, Wire


class ChainBroken(Exception):
    """The delta does not follow the mirror: resync from a snap."""


class RoomMirror:
    """The last frame of a room owned by another worker."""

    __slots__ = ("_state", "frame")

    def __init__(self) -> None:
        self._state = StateMirror()
        self.frame: StateFrame | None = None

    def apply_snap(self, packed: bytes) -> StateFrame:
        message = _unpack(packed)
        self._apply(message)
        state = self._state
        frame = StateFrame(message["tick"], None, message["st"], state.players, state.room,
                           state.acks)  # fmt: skip
        frame._snap = Wire.packed(message, packed)
        self.frame = frame
        return frame

    def apply_delta(self, packed: bytes) -> StateFrame:
        message = _unpack(packed)
        self._apply(message)
        state = self._state
        frame = StateFrame(
            message["tick"], message["base"], message["st"], state.players, state.room,
            state.acks, message["d"], message["acks"],
        )  # fmt: skip
        frame._delta = Wire.packed(message, packed)
        self.frame = frame
        return frame

    def _apply(self, message: dict[str, Any]) -> None:
        try:
            self._state.apply(message)
        except MirrorError as exc:
            raise ChainBroken(str(exc)) from None


def _unpack(packed: bytes) -> dict[str, Any]:
    message = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    if not isinstance(message, dict):
        raise ChainBroken("not a state message")
    return message
