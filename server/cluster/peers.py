"""The owner's side of a room shared across workers: one ``Peer`` per worker with members.

A member connected to another worker is a ``RemoteMemberLink`` in the room's roster, so
the room, its tick and its fan-out stay exactly as they are for local members. The link
only tells its ``Peer``; the peer sends each state frame and each reliable message once
per worker and turn (the worker fans the same bytes out to its own clients), using the
encodings the owner made for its own clients anyway.

Per member and tick this costs one identity check: the first member of a worker to be
given a frame sends it, the others find it sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tickrelay.protocol.messages as m
from tickrelay.protocol import ErrorCode
from tickrelay.server.cluster.items import CLOSE, PIN, RELIABLE, SNAP, STATE
from tickrelay.server.wire import StateFrame, Wire

Send = Callable[[str, Any], None]  # (worker id, item): the bus's batched send
Turn = Callable[[], int]  # the batcher's flush count: items of one turn may still grow


class Peer:
    """One worker with members in one room owned here: what it was sent, its links."""

    __slots__ = ("_key_size", "_mids", "_send", "_since_key", "_turn", "_wire", "_wire_turn",
                 "epoch", "links", "room_id", "sent_frame", "worker")  # fmt: skip

    def __init__(self, room_id: str, worker: str, epoch: int, send: Send, turn: Turn) -> None:
        self.room_id = room_id
        self.worker = worker
        self.epoch = epoch
        self._send = send
        self._turn = turn
        self.links: dict[int, RemoteMemberLink] = {}
        self.sent_frame: StateFrame | None = None
        self._since_key = 0  # bytes of the deltas sent since the last snap
        self._key_size = 0  # bytes of the last snap sent
        self._wire: Wire | None = None
        self._wire_turn = -1
        self._mids: list[int] = []

    def link(self, mid: int) -> RemoteMemberLink:
        link = self.links[mid] = RemoteMemberLink(self, mid)
        return link

    def send_frame(self, frame: StateFrame) -> None:
        """This tick's frame, to every member on the worker: a delta when the worker holds
        its base, else the whole snap.

        With the delta goes the snap of the same tick (a keyframe) once the deltas sent
        since the last one add up to its size: the worker works a state out of deltas
        only for a client that needs a snap, and never from more than a snap's worth of
        them, while the bytes between workers stay under twice the deltas'. Where every
        delta is about as big as the snap (players that all move every tick), every frame
        is a keyframe, and one snap encoding here spares the worker a decode and a merge."""
        sent = self.sent_frame
        delta = frame.delta if sent is not None and frame.base == sent.tick else None
        if delta is None:
            snap = frame.snap.packed_bytes
            self._since_key, self._key_size = 0, len(snap)
            self._send(self.worker, (SNAP, self.room_id, self.epoch, snap, frame.tick))
        else:
            packed = delta.packed_bytes
            self._since_key += len(packed)
            key = None
            if self._since_key >= self._key_size:
                key = frame.snap.packed_bytes
                self._since_key, self._key_size = 0, len(key)
            item = (STATE, self.room_id, self.epoch, packed, frame.tick, frame.base, key)
            self._send(self.worker, item)
        self.sent_frame = frame
        for link in self.links.values():
            link.synced = True

    def resync(self, frame: StateFrame) -> None:
        """The worker lost the chain (a gap): start it again from a snap."""
        self.sent_frame = None
        self.send_frame(frame)

    def pin(self, link: RemoteMemberLink) -> None:
        """A member joined between two ticks: the worker holds the frame, give it to them."""
        link.synced = True
        self._send(self.worker, (PIN, self.room_id, self.epoch, link.mid))

    def push_reliable(self, wire: Wire, mid: int) -> None:
        turn = self._turn()
        if wire is self._wire and turn == self._wire_turn:
            self._mids.append(mid)  # the item is still waiting for this turn's flush
            return
        self._wire, self._wire_turn, self._mids = wire, turn, [mid]
        self._send(self.worker, (RELIABLE, self.room_id, self.epoch, wire.packed_bytes, self._mids))

    def close(self, link: RemoteMemberLink, code: int, reason: str) -> None:
        self.links.pop(link.mid, None)
        self._send(self.worker, (CLOSE, self.room_id, self.epoch, link.mid, code, reason))

    def detach(self) -> None:
        """The room left this worker (handed over, or lost): say nothing more to the
        worker, whose members the new owner adopts."""
        self._send = _silent

    def forget(self, mid: int) -> RemoteMemberLink | None:
        return self.links.pop(mid, None)


def _silent(worker: str, item: Any) -> None:
    """What a detached peer sends: nothing."""


class RemoteMemberLink:
    """A ``MemberLink`` for a member connected to another worker."""

    __slots__ = ("member", "mid", "peer", "synced")

    def __init__(self, peer: Peer, mid: int) -> None:
        self.peer = peer
        self.mid = mid
        self.synced = False
        self.member: Any = None  # the room's Member, once joined

    def push_state(self, frame: StateFrame) -> None:
        peer = self.peer
        if frame is not peer.sent_frame:
            peer.send_frame(frame)
        elif not self.synced:
            peer.pin(self)

    def push_reliable(self, wire: Wire) -> None:
        self.peer.push_reliable(wire, self.mid)

    def send_error(self, code: ErrorCode, msg: str, ref: int | str | None = None) -> None:
        self.peer.push_reliable(Wire(m.error(code.value, msg, ref)), self.mid)

    def close(self, code: int, reason: str) -> None:
        self.peer.close(self, code, reason)

    def take_reliable(self) -> list[Wire]:
        """What the member's worker has not written yet stays there: it cannot be taken
        back without a round trip, and the old connection is closed 4010 anyway."""
        return []

    @property
    def queued_bytes(self) -> int:
        return 0  # held by the member's worker, not here

    def stats(self) -> dict[str, int]:
        return {"remote": 1}
