"""A worker's copy of a room owned elsewhere, as ``StateFrame``s (sans-I/O).

The owner sends each tick's delta once per worker, as the bytes it encoded for its own
clients, with its tick and base beside them, and now and then the whole snap as well (a
keyframe, see ``peers.Peer``). The worker wraps them in a ``StateFrame`` whose delta is
those bytes, so its local outboxes pick a delta or a snap per client exactly as on the
owner. Most clients only ever take the delta, so the state behind a frame is worked out
only when one needs a snap (a client that skipped ticks, a join): from the last keyframe,
applying the deltas since. Decoding and applying every delta as it came cost 17 µs a room
and tick, the largest single part of what a shared room added on a receiving worker in a
CPU-time cProfile of the bench; a frame now costs an object. A delta whose base is not
the last frame's tick breaks the chain: the worker asks the owner for a snap, and its
clients wait for it (a keyframe mends it too).
"""

from __future__ import annotations

import tickrelay.protocol.messages as m
from tickrelay.protocol.patch import apply_patch
from tickrelay.server.wire import PackedWire, StateFrame, Wire

#: Deltas without a keyframe after which a frame's state is worked out anyway, so a chain
#: (and what it holds) stays short whatever the owner sends.
RESOLVE_AFTER = 64


class ChainBroken(Exception):
    """The delta does not follow the mirror: resync from a snap."""


class MirroredFrame(StateFrame):
    """A frame from the owner's bytes; its state is known once ``resolve`` ran (or it is
    a keyframe, which holds the state itself)."""

    __slots__ = ("_previous",)

    def __init__(
        self,
        tick: int,
        base: int | None,
        delta: Wire | None,
        snap: Wire | None,
        previous: MirroredFrame | None,
    ) -> None:
        super().__init__(tick, base, 0, None, None, None)  # type: ignore[arg-type]
        # players None: not worked out yet (``resolve``)
        self._delta, self._snap = delta, snap
        self._previous = previous  # the frame this one's delta applies to, until resolved

    @property
    def snap(self) -> Wire:
        if self._snap is None:
            self.resolve()
            state = {"players": self.players, "room": self.room}
            self._snap = Wire(m.snap(self.tick, self.st, state, self.acks))
        return self._snap

    def resolve(self) -> None:
        """Work out the state: the unresolved frames before this one first, oldest first
        (a loop, not recursion: a chain may be ``RESOLVE_AFTER`` long)."""
        chain: list[MirroredFrame] = []
        frame: MirroredFrame | None = self
        while frame is not None and frame.players is None:
            chain.append(frame)
            frame = frame._previous
        for frame in reversed(chain):
            frame._work_out()

    def _work_out(self) -> None:
        previous = self._previous
        if previous is None:  # a keyframe (or the snap after a break): it holds it all
            message = self._snap.message  # type: ignore[union-attr]
            state, acks = message["s"], message["acks"]
        else:
            message = self._delta.message  # type: ignore[union-attr]
            before = {"players": previous.players, "room": previous.room}
            state = apply_patch(before, message["d"])
            acks = apply_patch(previous.acks, message.get("acks", {}))
            self._previous = None  # the chain behind is not needed any more
        self.st, self.players, self.room, self.acks = (
            message["st"],
            state["players"],
            state.get("room"),
            acks,
        )


class RoomMirror:
    """The last frame of a room owned by another worker."""

    __slots__ = ("_unresolved", "frame")

    def __init__(self) -> None:
        self.frame: MirroredFrame | None = None
        self._unresolved = 0

    def apply_snap(self, packed: bytes, tick: int) -> StateFrame:
        """The whole state (a first frame, or a resync): the chain starts again here."""
        frame = self.frame = MirroredFrame(tick, None, None, PackedWire(packed), None)
        self._unresolved = 0
        return frame

    def apply_delta(self, packed: bytes, tick: int, base: int, key: bytes | None) -> StateFrame:
        """A tick's delta; with ``key``, the snap of the same tick too, which makes the
        frame stand on its own (and mends a broken chain)."""
        delta = PackedWire(packed)
        if key is not None:
            frame = self.frame = MirroredFrame(tick, base, delta, PackedWire(key), None)
            self._unresolved = 0
            return frame
        previous = self.frame
        if previous is None or previous.tick != base:
            held = None if previous is None else previous.tick
            raise ChainBroken(f"delta base {base} is not the held tick {held}")
        frame = self.frame = MirroredFrame(tick, base, delta, None, previous)
        self._unresolved += 1
        if self._unresolved >= RESOLVE_AFTER:
            frame.resolve()
            self._unresolved = 0
        return frame
