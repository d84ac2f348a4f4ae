"""Room core, inputs and the undo of a refused one (contract section 2), on a manual clock."""

from __future__ import annotations

from typing import Any

from tests.room_core_fakes import Harness, make_room
from tickrelay.protocol import Input
from tickrelay.server.logic import InputRefused, RoomLogic, register


@register
class TouchEveryoneThenMaybeRefuse(RoomLogic):
    """Patches the sender, every other player and the room, then refuses when asked to."""

    name = "core_touch_everyone"

    def on_input(self, pid: str, d: dict[str, Any], room: dict[str, Any] | None) -> None:
        for other in list(self.room.players):
            self.room.patch_player(other, {"by": pid, "n": d.get("n")})
        self.room.patch_room({"last": d.get("n")})
        if d.get("refuse"):
            raise InputRefused("no")


def _room_with_two_players() -> Harness:
    core = make_room(logic="core_touch_everyone")
    core.join("a")
    core.join("b")
    core.room.receive_input(core.members["a"], Input(1, {"n": 1}))
    core.tick()
    return core


def test_a_refused_input_restores_every_player_it_touched() -> None:
    core = _room_with_two_players()
    before = dict(core.room.players)
    core.room.receive_input(core.members["b"], Input(1, {"n": 2, "refuse": True}))
    core.tick()
    assert core.room.players == before


def test_a_refused_input_restores_the_room_state() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["b"], Input(1, {"n": 2, "refuse": True}))
    core.tick()
    assert core.room.room_state == {"last": 1}


def test_a_refused_input_publishes_no_change() -> None:
    core = _room_with_two_players()
    frames = len(core.links["a"].states)
    core.room.receive_input(core.members["b"], Input(1, {"n": 2, "refuse": True}))
    core.tick()
    assert len(core.links["a"].states) == frames


def test_a_refused_input_is_answered_with_bad_message_and_its_seq() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["b"], Input(7, {"refuse": True}))
    core.tick()
    (error,) = core.links["b"].of_type("error")
    assert (error["code"], error["ref"]) == ("bad_message", 7)


def test_a_refused_input_does_not_move_the_ack() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["b"], Input(7, {"refuse": True}))
    core.tick()
    assert core.room.state.acks["b"] == 0


def test_a_refused_seq_does_not_count_for_the_stale_check() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["b"], Input(7, {"refuse": True}))
    core.tick()
    core.room.receive_input(core.members["b"], Input(3, {"n": 3}))
    core.tick()
    assert core.links["b"].of_type("error")[-1]["ref"] == 7  # no stale error for seq 3
    assert core.room.state.acks["b"] == 3


def test_a_refused_seq_keeps_the_bar_of_a_later_pending_input() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["b"], Input(7, {"refuse": True}))
    core.room.receive_input(core.members["b"], Input(8, {"n": 8}))
    core.tick()
    core.room.receive_input(core.members["b"], Input(8, {"n": 9}))
    assert core.links["b"].of_type("error")[-1]["code"] == "stale"


def test_an_accepted_input_is_acked_at_the_tick() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["b"], Input(4, {"n": 4}))
    core.tick()
    frame = core.links["a"].states[-1]
    assert frame.acks["b"] == 4
    assert frame.players["a"] == {"by": "b", "n": 4}


def test_an_input_is_stale_unless_its_seq_is_above_the_last_received() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["a"], Input(1, {"n": 5}))
    (error,) = core.links["a"].of_type("error")
    assert (error["code"], error["ref"]) == ("stale", 1)


def test_a_room_patch_from_another_than_the_host_is_refused_on_receipt() -> None:
    core = _room_with_two_players()
    core.room.receive_input(core.members["b"], Input(1, {}, {"x": 1}))
    (error,) = core.links["b"].of_type("error")
    assert error["code"] == "not_host"


def test_a_spectator_input_is_refused_on_receipt() -> None:
    core = _room_with_two_players()
    watcher = core.join("watcher", spectator=True)
    core.room.receive_input(core.members["watcher"], Input(1, {}))
    assert watcher.of_type("error")[0]["code"] == "spectator"
