"""Server messages as they go on the wire, encoded once however many clients receive them.

The hot-path rule is "encode each message once per room per tick": a ``Wire`` caches its
MessagePack and JSON encodings, and a ``StateFrame`` holds one tick's delta plus the
snapshot it leads to, so a client that skipped ticks can be given a ``snap`` instead.
"""

from __future__ import annotations

from typing import Any

import msgpack

import tickrelay.protocol.messages as m
from tickrelay.protocol import Codec, JsonCodec, MsgpackCodec
from tickrelay.server.framing import frame

_MSGPACK = MsgpackCodec()
_JSON = JsonCodec()

Encoded = bytes | str


class Wire:
    """One server message; its encodings are made lazily and at most once per codec."""

    __slots__ = ("_json", "_json_frame", "_packed", "_packed_frame", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._packed: bytes | None = None
        self._json: str | None = None
        self._packed_frame: bytes | None = None
        self._json_frame: bytes | None = None

    @property
    def packed_bytes(self) -> bytes:
        """The MessagePack encoding, as sent to other workers (made at most once)."""
        if self._packed is None:
            self._packed = _MSGPACK.encode(self.message)  # type: ignore[assignment]
        return self._packed  # type: ignore[return-value]

    def framed(self, codec: Codec) -> bytes:
        """The whole WebSocket frame, built once and written as is to every client."""
        if codec.binary:
            if self._packed_frame is None:
                self._packed_frame = frame(self.encode(codec))
            return self._packed_frame
        if self._json_frame is None:
            self._json_frame = frame(self.encode(codec))
        return self._json_frame

    def encode(self, codec: Codec) -> Encoded:
        if codec.binary:
            if self._packed is None:
                self._packed = _MSGPACK.encode(self.message)  # type: ignore[assignment]
            return self._packed  # type: ignore[return-value]
        if self._json is None:
            self._json = _JSON.encode(self.message)  # type: ignore[assignment]
        return self._json  # type: ignore[return-value]

    @property
    def encoded_size(self) -> int | None:
        """Bytes of an encoding already made (MessagePack first, else JSON), or None."""
        if self._packed is not None:
            return len(self._packed)
        if self._json is not None:
            return len(self._json)
        return None

    @property
    def size(self) -> int:
        """Size in the binary encoding: what bounds on queued bytes are counted in."""
        return len(self.packed_bytes)


class PackedWire(Wire):
    """A message that arrived encoded, from the worker that owns its room: its MessagePack
    bytes go to clients as they are, and it is decoded only if a JSON client needs it."""

    __slots__ = ()

    def __init__(self, packed: bytes) -> None:
        self._packed = packed
        self._json = None
        self._packed_frame = None
        self._json_frame = None

    def __getattr__(self, name: str) -> Any:
        """``message``, decoded on first use (only an unset slot gets here)."""
        if name != "message":
            raise AttributeError(name)
        self.message = msgpack.unpackb(self._packed, raw=False, strict_map_key=False)
        return self.message


class StateFrame:
    """The state a room published at one tick.

    ``delta`` turns the frame at ``base`` into this one; ``snap`` is the whole state. The
    snapshot parts are immutable (states are copy-on-write), so keeping them costs only
    references, and the snap is built only if some client needs it.
    """

    __slots__ = (
        "_delta",
        "_snap",
        "acks",
        "acks_patch",
        "base",
        "patch",
        "players",
        "room",
        "st",
        "tick",
    )

    def __init__(
        self,
        tick: int,
        base: int | None,
        st: int,
        players: dict[str, Any],
        room: Any,
        acks: dict[str, int],
        patch: dict[str, Any] | None = None,
        acks_patch: dict[str, int | None] | None = None,
    ) -> None:
        self.tick = tick
        self.base = base
        self.st = st
        self.players = players
        self.room = room
        self.acks = acks
        self.patch = patch
        self.acks_patch = acks_patch
        self._delta: Wire | None = None
        self._snap: Wire | None = None

    @property
    def snap(self) -> Wire:
        if self._snap is None:
            state = {"players": self.players, "room": self.room}
            self._snap = Wire(m.snap(self.tick, self.st, state, self.acks))
        return self._snap

    @property
    def delta(self) -> Wire | None:
        if self._delta is None and self.patch is not None and self.base is not None:
            acks_patch = self.acks_patch if self.acks_patch is not None else {}
            self._delta = Wire(m.delta(self.tick, self.base, self.st, self.patch, acks_patch))
        return self._delta

    @property
    def encoded_size(self) -> int | None:
        """Bytes of the message most members got (the delta, else the snap), in the encoding
        already made for them (MessagePack first); None when nothing was encoded yet.
        Reads what the fan-out left: never encodes for the sake of measuring."""
        wire = self._delta or self._snap
        if wire is None:
            return None
        encoded = wire._packed or wire._json  # Wire.encoded_size, inlined: once per tick
        return len(encoded) if encoded is not None else None

    def wire_for(self, have_tick: int | None) -> Wire:
        """A delta when the client holds our base, else the full snapshot (never a broken chain)."""
        if have_tick is not None and have_tick == self.base:
            delta = self.delta
            if delta is not None:
                return delta
        return self.snap
