"""A room's state without sockets: what counts as a change to publish (issue 8, item 3).

A room ticks only while its state is dirty, so anything that leaves the state equal must
leave it clean: an idle room must cost no tick at all.
"""

from __future__ import annotations

from tickrelay.protocol import apply_patch
from tickrelay.server.state import RoomState


def new_state() -> RoomState:
    return RoomState(max_player_bytes=16 * 1024, max_room_bytes=256 * 1024)


def published(state: RoomState) -> RoomState:
    """``state`` after publishing whatever it had, so that it starts clean."""
    state.publish(1)
    assert not state.dirty
    return state


def test_a_new_room_state_is_clean():
    assert not new_state().dirty


def test_a_patch_setting_the_values_a_player_has_leaves_the_state_clean():
    state = new_state()
    state.add_player("p")
    state.set_player("p", state.patched_player("p", {"x": 1.5, "name": "ann"}))
    state = published(state)
    state.set_player("p", state.patched_player("p", {"x": float("1.5"), "name": "an" + "n"}))
    assert not state.dirty


def test_an_equal_value_of_another_type_is_a_change():
    state = new_state()
    state.add_player("p")
    state.set_player("p", state.patched_player("p", {"x": 1}))
    state = published(state)
    state.set_player("p", state.patched_player("p", {"x": 1.0}))
    assert state.dirty


def test_a_room_state_changed_and_changed_back_within_a_tick_is_clean_after_it():
    state = new_state()
    state.set_room(apply_patch(state.room, {"map": "dune"}))
    state = published(state)
    state.set_room(state.patched_room({"map": "moon"}))
    state.set_room(state.patched_room({"map": "dune"}))
    assert state.publish(2) is None
    assert not state.dirty
