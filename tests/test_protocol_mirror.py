"""StateMirror: the client's copy of room state, driven by snap and delta messages."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tickrelay.protocol.messages as m
from tickrelay.protocol import JsonCodec, MirrorError, MsgpackCodec, StateMirror, diff

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PIDS = st.sampled_from(["p1", "p2", "p3"])
PLAYER_STATES = st.dictionaries(
    st.sampled_from(["x", "y", "hp", "inv"]),
    st.integers(-5, 5) | st.booleans() | st.lists(st.integers(0, 3), max_size=2),
    max_size=3,
)
ROOM_STATES = st.dictionaries(st.sampled_from(["score", "phase"]), st.integers(0, 3), max_size=2)
SNAPSHOTS = st.tuples(st.dictionaries(PIDS, PLAYER_STATES), ROOM_STATES)


def snap_message(tick: int = 10) -> dict[str, Any]:
    s = {"players": {"p1": {"x": 1}, "p2": {"x": 2}}, "room": {"score": 0}}
    return m.snap(tick, 1000, s, {"p1": 3, "p2": 0})


def synced_mirror() -> StateMirror:
    mirror = StateMirror()
    mirror.apply(snap_message())
    return mirror


def fields(mirror: StateMirror) -> tuple[Any, ...]:
    return (mirror.tick, mirror.players, mirror.room, mirror.acks)


def test_new_mirror_holds_no_tick_and_empty_state() -> None:
    mirror = StateMirror()
    assert fields(mirror) == (None, {}, {}, {})


def test_snap_replaces_the_whole_state() -> None:
    mirror = synced_mirror()
    assert mirror.apply(m.snap(20, 2000, {"players": {"p9": {}}, "room": {"a": 1}}, {"p9": 0}))
    assert fields(mirror) == (20, {"p9": {}}, {"a": 1}, {"p9": 0})


def test_state_is_the_snapshot_shape() -> None:
    assert synced_mirror().state == {
        "players": {"p1": {"x": 1}, "p2": {"x": 2}},
        "room": {"score": 0},
    }


def test_delta_on_the_held_tick_is_applied() -> None:
    mirror = synced_mirror()
    assert mirror.apply(m.delta(12, 10, 1100, {"players": {"p1": {"x": 5}}, "room": {"a": 1}}, {}))
    assert mirror.tick == 12
    assert mirror.players == {"p1": {"x": 5}, "p2": {"x": 2}}
    assert mirror.room == {"score": 0, "a": 1}


def test_delta_acks_patch_updates_and_null_removes_entries() -> None:
    mirror = synced_mirror()
    mirror.apply(m.delta(11, 10, 1050, {"players": {"p2": None}}, {"p1": 4, "p2": None}))
    assert mirror.acks == {"p1": 4}
    assert mirror.players == {"p1": {"x": 1}}


def test_delta_leaves_unchanged_player_states_shared() -> None:
    mirror = synced_mirror()
    p2 = mirror.players["p2"]
    mirror.apply(m.delta(11, 10, 1050, {"players": {"p1": {"x": 0}}}, {}))
    assert mirror.players["p2"] is p2


def test_delta_on_another_base_raises_and_changes_nothing() -> None:
    mirror = synced_mirror()
    before = fields(mirror)
    with pytest.raises(MirrorError):
        mirror.apply(m.delta(12, 11, 1100, {"room": {"a": 1}}, {"p1": 4}))
    assert fields(mirror) == before


def test_delta_before_any_snap_raises() -> None:
    with pytest.raises(MirrorError):
        StateMirror().apply(m.delta(1, 0, 0, {}, {}))


def test_delta_without_base_raises() -> None:
    with pytest.raises(MirrorError):
        synced_mirror().apply({"t": "delta", "tick": 11, "st": 0, "d": {}, "acks": {}})


@pytest.mark.parametrize(
    "message",
    [
        {"t": "snap", "tick": 1, "st": 0, "s": [], "acks": {}},
        {"t": "snap", "tick": "1", "st": 0, "s": {"players": {}, "room": {}}, "acks": {}},
        {"t": "snap", "tick": 1, "st": 0, "s": {"players": [], "room": {}}, "acks": {}},
        {"t": "snap", "tick": 1, "st": 0, "s": {"players": {}, "room": {}}},
        {"t": "delta", "tick": 11, "base": 10, "st": 0, "d": [1], "acks": {}},
        {"t": "delta", "tick": 11, "base": 10, "st": 0, "d": {"players": 1}, "acks": {}},
        {"t": "delta", "tick": 11, "base": 10, "st": 0, "d": {}, "acks": [1]},
    ],
)
def test_malformed_state_message_raises_and_changes_nothing(message: dict[str, Any]) -> None:
    mirror = synced_mirror()
    before = fields(mirror)
    with pytest.raises(MirrorError):
        mirror.apply(message)
    assert fields(mirror) == before


def test_snap_after_deltas_resyncs() -> None:
    mirror = synced_mirror()
    mirror.apply(m.delta(11, 10, 0, {"room": {"a": 1}}, {}))
    mirror.apply(m.snap(30, 0, {"players": {}, "room": {}}, {}))
    assert fields(mirror) == (30, {}, {}, {})


@pytest.mark.parametrize("message", [m.join("p1"), m.pong(1, 2), m.event(None, 1), {"t": "x"}])
def test_other_messages_are_not_consumed(message: dict[str, Any]) -> None:
    mirror = synced_mirror()
    before = fields(mirror)
    assert mirror.apply(message) is False
    assert fields(mirror) == before


def test_last_ack_of_a_known_player() -> None:
    assert synced_mirror().last_ack("p1") == 3


def test_last_ack_of_an_unknown_player_is_zero() -> None:
    assert synced_mirror().last_ack("nobody") == 0


def test_mirror_does_not_mutate_the_messages_it_applies() -> None:
    mirror = synced_mirror()
    message = m.delta(11, 10, 0, {"players": {"p1": {"x": None}}}, {"p1": 9})
    mirror.apply(message)
    assert message["d"] == {"players": {"p1": {"x": None}}}
    assert message["acks"] == {"p1": 9}


@PROPERTY
@given(
    states=st.lists(SNAPSHOTS, min_size=1, max_size=6),
    kind=st.sampled_from([MsgpackCodec, JsonCodec]),
)
def test_mirror_follows_server_states_sent_as_snap_then_deltas(
    states: list[tuple[dict[str, Any], dict[str, Any]]], kind: type[MsgpackCodec | JsonCodec]
) -> None:
    codec = kind()
    mirror = StateMirror()
    previous: dict[str, Any] | None = None
    previous_acks: dict[str, int] = {}
    for tick, (players, room) in enumerate(states, start=1):
        state = {"players": players, "room": room}
        acks = {pid: len(player) for pid, player in players.items()}
        if previous is None:
            message = m.snap(tick, 0, state, acks)
        else:
            message = m.delta(tick, tick - 1, 0, diff(previous, state), diff(previous_acks, acks))
        mirror.apply(codec.decode(codec.encode(message)))
        assert (mirror.tick, mirror.state, mirror.acks) == (tick, state, acks)
        previous, previous_acks = state, acks
