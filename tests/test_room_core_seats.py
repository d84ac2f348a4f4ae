"""Room core, seats and places (contract sections 2 and 4), without a socket or a loop."""

from __future__ import annotations

import asyncio

import pytest

import tests.logic_fixtures  # noqa: F401  (registers the fixture logics)
from tests.room_core_fakes import FakeLink, make_room
from tickrelay.protocol import CloseCode
from tickrelay.server.refusal import JoinRefusal
from tickrelay.server.wire import Wire


def test_a_new_player_is_welcomed_with_its_pid_and_a_resume_token() -> None:
    core = make_room()
    link = core.join("a")
    (welcome,) = link.of_type("welcome")
    assert welcome["pid"] == "a"
    assert welcome["resume"]
    assert welcome["resumed"] is False


def test_an_anonymous_player_gets_a_random_pid() -> None:
    core = make_room()
    link = FakeLink()
    member = core.room.join(link, None, False)
    assert member.pid
    assert link.of_type("welcome")[0]["pid"] == member.pid


def test_the_seat_past_max_players_is_refused_with_4009() -> None:
    core = make_room(max_players=2)
    core.join("a")
    core.join("b")
    with pytest.raises(JoinRefusal) as refused:
        core.join("c")
    assert refused.value.code == CloseCode.ROOM_FULL
    assert core.room.seated == 2


def test_spectator_places_are_counted_apart_from_seats() -> None:
    core = make_room(max_players=1, max_spectators=1)
    core.join("a")
    core.join("watcher", spectator=True)
    with pytest.raises(JoinRefusal) as refused:
        core.join("watcher2", spectator=True)
    assert refused.value.code == CloseCode.ROOM_FULL
    assert (core.room.seated, core.room.spectators) == (1, 1)


def test_a_join_is_announced_to_the_others_not_to_the_joiner() -> None:
    core = make_room()
    first = core.join("a")
    second = core.join("b")
    assert {"t": "join", "pid": "b"} in first.reliable
    assert second.of_type("join") == []


def test_a_spectator_is_not_announced() -> None:
    core = make_room()
    first = core.join("a")
    core.join("watcher", spectator=True)
    assert first.of_type("join") == []


def test_a_takeover_closes_the_old_link_with_4010() -> None:
    core = make_room()
    old = core.join("a")
    core.join("a")
    assert old.closed is not None and old.closed[0] == CloseCode.REPLACED


def test_a_takeover_carries_the_unsent_reliable_messages_to_the_new_link() -> None:
    core = make_room()
    core.join("a")
    core.links["a"].backlog = [Wire({"t": "event", "from": None, "d": "pending"})]
    new = core.join("a")
    assert new.kinds[:2] == ["welcome", "event"]
    assert new.reliable[1]["d"] == "pending"


def test_a_takeover_keeps_the_seat_without_announcing_a_join() -> None:
    core = make_room()
    other = core.join("b")
    core.join("a")
    core.join("a")
    assert other.of_type("join") == [{"t": "join", "pid": "a"}]
    assert core.room.seated == 2


def test_a_spectate_only_takeover_of_a_seat_is_refused_with_4003() -> None:
    core = make_room()
    core.join("a")
    with pytest.raises(JoinRefusal) as refused:
        core.join("a", spectator=True, spectate_only=True)
    assert refused.value.code == CloseCode.FORBIDDEN


def test_a_join_refused_by_the_logic_leaves_no_seat() -> None:
    core = make_room(logic="one_seat")
    core.join("a")
    with pytest.raises(JoinRefusal) as refused:
        core.join("b")
    assert (refused.value.code, refused.value.reason) == (CloseCode.ROOM_FULL, "table for one")
    assert list(core.room.players) == ["a"]


def test_a_closed_room_refuses_a_join_with_4004() -> None:
    core = make_room()
    asyncio.run(core.room.close())
    with pytest.raises(JoinRefusal) as refused:
        core.join("a")
    assert refused.value.code == CloseCode.NO_ROOM
