"""A worker's mirror of a room owned elsewhere, and the keyframes its owner sends (sans-I/O).

The owner's bytes go to clients as they are; the state behind a frame is worked out only
when a client needs a snap, from the last keyframe and the deltas since.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

import tickrelay.protocol.messages as m
from tickrelay.protocol import JsonCodec, MsgpackCodec, StateMirror
from tickrelay.server.cluster.items import SNAP, STATE
from tickrelay.server.cluster.mirror import RESOLVE_AFTER, ChainBroken, RoomMirror
from tickrelay.server.cluster.peers import Peer
from tickrelay.server.wire import PackedWire, StateFrame


def snap_bytes(tick: int, players: dict[str, Any]) -> bytes:
    return msgpack.packb(m.snap(tick, 7, {"players": players, "room": {}}, {"a": 1}))


def delta_bytes(tick: int, d: dict[str, Any], acks: dict[str, Any] | None = None) -> bytes:
    return msgpack.packb(m.delta(tick, tick - 1, 7 + tick, d, acks or {}))


def followed(mirror: RoomMirror, ticks: range) -> None:
    for tick in ticks:
        mirror.apply_delta(delta_bytes(tick, {"players": {"a": {"n": tick}}}), tick, tick - 1, None)


def test_a_delta_frame_sends_the_owners_bytes_and_decodes_nothing() -> None:
    mirror = RoomMirror()
    mirror.apply_snap(snap_bytes(1, {"a": {"n": 0}}), 1)
    packed = delta_bytes(2, {"players": {"a": {"n": 2}}})
    frame = mirror.apply_delta(packed, 2, 1, None)
    assert frame.wire_for(1).encode(MsgpackCodec()) is packed
    assert frame.players is None  # nobody needed the state yet


def test_a_snap_worked_out_of_deltas_is_the_state_a_client_would_hold() -> None:
    mirror = RoomMirror()
    mirror.apply_snap(snap_bytes(1, {"a": {"n": 0}, "b": {"x": 1}}), 1)
    client = StateMirror()
    client.apply(msgpack.unpackb(snap_bytes(1, {"a": {"n": 0}, "b": {"x": 1}})))
    for tick, d in ((2, {"players": {"a": {"n": 2}}}), (3, {"players": {"b": None}})):
        packed = delta_bytes(tick, d, {"a": tick})
        mirror.apply_delta(packed, tick, tick - 1, None)
        client.apply(msgpack.unpackb(packed))
    assert mirror.frame is not None
    snap = msgpack.unpackb(mirror.frame.wire_for(None).encode(MsgpackCodec()))
    assert (snap["t"], snap["tick"], snap["st"]) == ("snap", 3, 10)
    assert snap["s"] == client.state
    assert snap["acks"] == client.acks == {"a": 3}


def test_a_delta_that_does_not_follow_the_last_frame_breaks_the_chain() -> None:
    mirror = RoomMirror()
    mirror.apply_snap(snap_bytes(1, {}), 1)
    with pytest.raises(ChainBroken):
        mirror.apply_delta(delta_bytes(5, {}), 5, 4, None)


def test_a_keyframe_stands_on_its_own_and_mends_a_broken_chain() -> None:
    mirror = RoomMirror()
    key = snap_bytes(5, {"a": {"n": 5}})
    frame = mirror.apply_delta(delta_bytes(5, {"players": {"a": {"n": 5}}}), 5, 4, key)
    assert frame.wire_for(None).encode(MsgpackCodec()) is key
    followed(mirror, range(6, 8))
    assert mirror.frame is not None
    assert msgpack.unpackb(mirror.frame.snap.packed_bytes)["s"]["players"] == {"a": {"n": 7}}


def test_a_long_chain_is_worked_out_without_waiting_for_a_snap() -> None:
    mirror = RoomMirror()
    mirror.apply_snap(snap_bytes(1, {"a": {"n": 0}}), 1)
    followed(mirror, range(2, 2 + RESOLVE_AFTER))
    assert mirror.frame is not None
    assert mirror.frame.players == {"a": {"n": 1 + RESOLVE_AFTER}}
    assert mirror.frame._previous is None  # nothing older is held


def test_an_owners_message_is_decoded_only_for_a_json_client() -> None:
    wire = PackedWire(msgpack.packb(m.event("p1", {"hit": 1})))
    with pytest.raises(AttributeError):
        object.__getattribute__(wire, "message")  # not decoded for MessagePack clients
    assert wire.encode(JsonCodec()) == JsonCodec().encode(m.event("p1", {"hit": 1}))


class Sent:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def __call__(self, worker: str, item: Any) -> None:
        self.items.append(item)


def owner_frame(tick: int, players: dict[str, Any], patch: dict[str, Any]) -> StateFrame:
    return StateFrame(tick, tick - 1, 7, players, {}, {}, {"players": patch}, {})


def test_an_owner_sends_a_keyframe_once_the_deltas_add_up_to_a_snap() -> None:
    sent = Sent()
    peer = Peer("r1", "w2", 1, sent, lambda: 0)
    big = {f"p{n}": {"x": n, "y": n} for n in range(8)}
    peer.send_frame(StateFrame(1, None, 7, big, {}, {}))
    for tick in range(2, 12):  # one player moves: deltas far smaller than the snap
        peer.send_frame(owner_frame(tick, big, {"p0": {"x": tick}}))
    kinds = [(item[0], item[-1] is not None) for item in sent.items]
    assert kinds[0] == (SNAP, True)
    assert all(kind == STATE for kind, _ in kinds[1:])
    keyframes = [n for n, (_, key) in enumerate(kinds[1:], start=2) if key]
    snap_size, delta_size = len(sent.items[0][3]), len(sent.items[1][3])
    assert keyframes and keyframes[0] == 1 + -(-snap_size // delta_size)


def test_an_owner_whose_deltas_are_as_big_as_the_snap_sends_keyframes_every_tick() -> None:
    sent = Sent()
    peer = Peer("r1", "w2", 1, sent, lambda: 0)
    peer.send_frame(StateFrame(1, None, 7, {"a": {"x": 0}}, {}, {}))
    for tick in range(2, 6):
        peer.send_frame(owner_frame(tick, {"a": {"x": tick}}, {"a": {"x": tick}}))
    assert all(item[0] == STATE and item[-1] is not None for item in sent.items[1:])
