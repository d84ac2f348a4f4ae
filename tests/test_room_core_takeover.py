"""A room rebuilt from its checkpoint on another worker (sans-I/O, on a manual clock).

What a takeover must keep: seats, pids, join order, resume tokens, the host, the state of
the last checkpoint and the room's clock; what it must tell: nothing to members adopted
by their live worker, ``away`` for the others.
"""

from __future__ import annotations

import pytest

import tickrelay.examples.tag  # noqa: F401  (registers the "tag" logic)
from tests.room_core_fakes import FakeLink, Harness, make_room
from tickrelay.protocol import CloseCode, ErrorCode, Input
from tickrelay.server.cluster import checkpoint
from tickrelay.server.refusal import JoinRefusal


def played() -> Harness:
    """Alice (host) and Bob in a room, each with a state and an acked input."""
    core = make_room()
    core.join("alice")
    core.join("bob")
    core.room.receive_input(core.members["alice"], Input(1, {"x": 1}))
    core.room.receive_input(core.members["bob"], Input(1, {"y": 2}))
    core.tick()
    return core


def saved(core: Harness, workers: dict[str, str] | None = None) -> checkpoint.Checkpoint:
    workers = workers if workers is not None else {"alice": "w1", "bob": "w2"}
    roster = checkpoint.pack_roster(core.room, workers)
    state = checkpoint.pack_state(core.room, {"mine": 1})
    return checkpoint.unpack(roster, state)


def taken_over(core: Harness, **limits: float) -> Harness:
    """The room as a new owner rebuilds it, some time after the checkpoint."""
    ck = saved(core)
    successor = make_room(**limits)
    checkpoint.restore(successor.room, ck)
    return successor


def test_a_checkpoint_keeps_seats_order_tokens_and_host() -> None:
    core = played()
    ck = saved(core)
    assert [(m.pid, m.order, m.spectator) for m in ck.members] == [
        ("alice", 0, False),
        ("bob", 1, False),
    ]
    assert [m.token for m in ck.members] == [
        core.members["alice"].resume_token,
        core.members["bob"].resume_token,
    ]
    assert ck.host == "alice"
    assert ck.players == {"alice": {"x": 1}, "bob": {"y": 2}}
    assert ck.acks == {"alice": 1, "bob": 1}
    assert ck.logic == {"mine": 1}


def test_a_checkpoint_saves_the_last_published_frame_not_pending_changes() -> None:
    core = played()
    core.room.receive_input(core.members["alice"], Input(2, {"x": 9}))
    core.room.apply_input("alice", {"x": 9}, None)  # applied, not yet published
    assert saved(core).players["alice"] == {"x": 1}


def test_an_unreadable_checkpoint_is_refused() -> None:
    with pytest.raises(checkpoint.BadCheckpoint):
        checkpoint.unpack(b"\x93\x01\x02", None)


def test_a_restored_room_keeps_seats_host_and_state() -> None:
    successor = taken_over(played())
    room = successor.room
    assert room.seated == 2
    assert room.host.pid == "alice"
    assert room.players == {"alice": {"x": 1}, "bob": {"y": 2}}
    assert room.state.acks == {"alice": 1, "bob": 1}


def test_the_restored_state_is_published_as_a_snap_at_a_later_tick() -> None:
    core = played()
    last_tick = core.room.state.last_frame.tick
    frame = taken_over(core).room.state.last_frame
    assert frame.base is None
    assert frame.tick > last_tick


def test_resume_tokens_from_the_checkpoint_resume_on_the_new_owner() -> None:
    core = played()
    token = core.members["alice"].resume_token
    successor = taken_over(core)
    link = FakeLink()
    member = successor.room.join(link, None, False, token)
    assert member.pid == "alice"
    assert link.reliable[0]["t"] == "welcome" and link.reliable[0]["resumed"] is True


def test_an_adopted_member_gets_the_state_and_no_welcome() -> None:
    successor = taken_over(played())
    link = FakeLink()
    successor.room.adopt(link, "bob")
    assert "welcome" not in link.kinds
    assert link.states and link.states[-1].base is None


def test_adopting_a_member_the_room_does_not_hold_is_refused_4012() -> None:
    successor = taken_over(played())
    with pytest.raises(JoinRefusal) as refused:
        successor.room.adopt(FakeLink(), "mallory")
    assert refused.value.code == CloseCode.RESUME_FAILED


def test_an_adoption_before_the_settle_is_silent_to_the_others() -> None:
    successor = taken_over(played())
    bob = FakeLink()
    successor.room.adopt(bob, "bob")
    carol = FakeLink()
    successor.room.adopt(carol, "alice")
    assert "back" not in bob.kinds


def test_members_nobody_adopted_are_announced_away_at_the_settle() -> None:
    successor = taken_over(played())
    bob = FakeLink()
    successor.room.adopt(bob, "bob")
    successor.room.settle()
    assert bob.of_type("away") == [{"t": "away", "pid": "alice"}]


def test_the_host_role_passes_on_at_the_settle_when_its_holder_is_away() -> None:
    successor = taken_over(played())
    bob = FakeLink()
    successor.room.adopt(bob, "bob")
    successor.room.settle()
    assert bob.of_type("host") == [{"t": "host", "pid": "bob"}]


def test_an_adoption_after_the_settle_is_announced_back() -> None:
    successor = taken_over(played())
    bob = FakeLink()
    successor.room.adopt(bob, "bob")
    successor.room.settle()
    successor.room.adopt(FakeLink(), "alice")
    assert bob.of_type("back") == [{"t": "back", "pid": "alice"}]


def test_a_member_away_at_the_checkpoint_keeps_only_what_was_left_of_its_grace() -> None:
    core = played()
    core.drop("bob")
    core.clock.advance(8.0)  # of a 15 s grace: 7 s left when the checkpoint was taken
    successor = taken_over(core)
    successor.clock.advance(6.5)
    assert "bob" in successor.room.players
    successor.clock.advance(1.0)
    assert "bob" not in successor.room.players


def test_a_restored_members_inputs_need_a_seq_above_its_checkpointed_ack() -> None:
    successor = taken_over(played())
    link = FakeLink()
    member = successor.room.adopt(link, "alice")
    successor.room.receive_input(member, Input(1, {"x": 5}))
    errors = link.of_type("error")
    assert errors and errors[0]["code"] == str(ErrorCode.STALE)


def test_logic_gets_back_what_it_saved() -> None:
    core = make_room(logic="tag")
    core.join("alice")
    core.tick()
    core.room.logic.spawns = 5
    ck = checkpoint.unpack(
        checkpoint.pack_roster(core.room, {"alice": "w1"}),
        checkpoint.pack_state(core.room, core.room.logic.on_save()),
    )
    successor = make_room(logic="tag")
    checkpoint.restore(successor.room, ck)
    assert successor.room.logic.spawns == 5
    assert successor.room.room_state["scores"] == {"alice": 0}
