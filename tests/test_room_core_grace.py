"""Room core, resume grace and gaps (contract section 6), on a manual clock."""

from __future__ import annotations

import pytest

from tests.room_core_fakes import make_room
from tickrelay.protocol import CloseCode
from tickrelay.server.refusal import JoinRefusal


def test_a_dropped_player_is_announced_away_and_keeps_its_seat() -> None:
    core = make_room()
    core.join("a")
    other = core.join("b")
    core.drop("a")
    assert other.of_type("away") == [{"t": "away", "pid": "a"}]
    assert "a" in core.room.players
    assert core.room.seated == 2


def test_messages_sent_while_away_are_delivered_on_resume_after_the_welcome() -> None:
    core = make_room()
    core.join("a")
    core.join("b")
    core.drop("a")
    core.room.send_event("one")
    core.room.send_event("two")
    link = core.resume("a")
    assert link.kinds == ["welcome", "host", "event", "event"]  # host: b took it meanwhile
    assert [message["d"] for message in link.of_type("event")] == ["one", "two"]
    assert link.reliable[0]["resumed"] is True


def test_a_resume_is_announced_back_to_the_others() -> None:
    core = make_room()
    core.join("a")
    other = core.join("b")
    core.drop("a")
    core.resume("a")
    assert other.of_type("back") == [{"t": "back", "pid": "a"}]


def test_a_gap_overflow_ends_the_seat_with_timeout() -> None:
    core = make_room(gap_messages=2)
    core.join("a")
    other = core.join("b")
    core.drop("a")
    for n in range(3):
        core.room.send_event(n)
    assert "a" not in core.room.players
    assert other.of_type("leave") == [{"t": "leave", "pid": "a", "reason": "timeout"}]


def test_a_gap_is_bounded_in_bytes_too() -> None:
    core = make_room(gap_bytes=300)
    core.join("a")
    core.join("b")
    core.drop("a")
    core.room.send_event("x" * 100)
    assert "a" in core.room.players
    core.room.send_event("x" * 100)
    assert "a" in core.room.players
    core.room.send_event("x" * 100)
    assert "a" not in core.room.players


def test_the_end_of_the_grace_ends_the_seat_with_timeout() -> None:
    core = make_room(resume_grace=5.0)
    core.join("a")
    other = core.join("b")
    core.drop("a")
    core.clock.advance(4.9)
    assert "a" in core.room.players
    core.clock.advance(0.2)
    assert "a" not in core.room.players
    assert other.of_type("leave") == [{"t": "leave", "pid": "a", "reason": "timeout"}]


def test_a_resume_inside_the_grace_cancels_its_end() -> None:
    core = make_room(resume_grace=5.0)
    core.join("a")
    core.drop("a")
    core.clock.advance(3.0)
    core.resume("a")
    core.clock.advance(10.0)
    assert "a" in core.room.players


def test_without_a_grace_a_drop_ends_the_seat_at_once() -> None:
    core = make_room(resume_grace=0.0)
    core.join("a")
    other = core.join("b")
    core.drop("a")
    assert other.of_type("leave") == [{"t": "leave", "pid": "a", "reason": "timeout"}]
    assert other.of_type("away") == []


def test_an_unknown_resume_token_is_refused_with_4012() -> None:
    core = make_room()
    with pytest.raises(JoinRefusal) as refused:
        core.join("a", resume="nonsense")
    assert refused.value.code == CloseCode.RESUME_FAILED


def test_a_resume_token_of_an_ended_place_is_refused_with_4012() -> None:
    core = make_room(resume_grace=1.0)
    core.join("a")
    token = core.members["a"].resume_token
    core.drop("a")
    core.clock.advance(2.0)
    with pytest.raises(JoinRefusal) as refused:
        core.join("a", resume=token)
    assert refused.value.code == CloseCode.RESUME_FAILED


def test_a_resume_token_is_replaced_by_each_welcome() -> None:
    core = make_room()
    core.join("a")
    first = core.members["a"].resume_token
    core.drop("a")
    core.resume("a")
    core.drop("a")
    with pytest.raises(JoinRefusal) as refused:
        core.join("a", resume=first)
    assert refused.value.code == CloseCode.RESUME_FAILED


def test_another_players_resume_token_is_refused_with_4001() -> None:
    core = make_room()
    core.join("a")
    core.drop("a")
    with pytest.raises(JoinRefusal) as refused:
        core.join("b", resume=core.members["a"].resume_token)
    assert refused.value.code == CloseCode.UNAUTHORIZED
