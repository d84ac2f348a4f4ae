"""Room core, the host role (contract section 5), without a socket or a loop."""

from __future__ import annotations

from tests.room_core_fakes import make_room
from tickrelay.protocol import LeaveReason


def test_the_first_seated_player_is_host() -> None:
    core = make_room()
    link = core.join("a")
    core.join("b")
    assert core.room.host.pid == "a"
    assert link.of_type("welcome")[0]["host"] == "a"


def test_a_spectator_does_not_take_the_host_role() -> None:
    core = make_room()
    core.join("watcher", spectator=True)
    core.join("a")
    assert core.room.host.pid == "a"


def test_when_the_host_leaves_the_next_by_join_order_takes_it() -> None:
    core = make_room()
    core.join("a")
    core.join("b")
    third = core.join("c")
    core.end("a", LeaveReason.LEFT)
    assert core.room.host.pid == "b"
    assert third.of_type("host")[-1] == {"t": "host", "pid": "b"}


def test_when_the_host_drops_the_next_connected_player_takes_it() -> None:
    core = make_room()
    core.join("a")
    core.join("b")
    core.join("c")
    core.drop("b")
    core.drop("a")
    assert core.room.host.pid == "c"


def test_nobody_holds_the_role_while_every_seated_player_is_away() -> None:
    core = make_room()
    core.join("a")
    core.join("b")
    watcher = core.join("watcher", spectator=True)
    core.drop("a")
    core.drop("b")
    assert core.room.host.pid is None
    assert watcher.of_type("host")[-1] == {"t": "host", "pid": None}


def test_a_player_coming_back_by_resume_takes_a_free_host_role() -> None:
    core = make_room()
    core.join("a")
    core.join("b")
    core.drop("a")
    core.drop("b")
    link = core.resume("b")
    assert core.room.host.pid == "b"
    assert link.of_type("host")[-1] == {"t": "host", "pid": "b"}


def test_a_player_coming_back_by_takeover_takes_a_free_host_role() -> None:
    core = make_room()
    core.join("a")
    core.drop("a")
    core.join("a")
    assert core.room.host.pid == "a"


def test_a_new_player_takes_a_free_host_role() -> None:
    core = make_room()
    core.join("a")
    core.drop("a")
    link = core.join("b")
    assert core.room.host.pid == "b"
    assert link.of_type("welcome")[0]["host"] == "b"


def test_the_host_role_does_not_move_when_another_player_comes_back() -> None:
    core = make_room()
    core.join("a")
    core.join("b")
    core.drop("b")
    core.resume("b")
    assert core.room.host.pid == "a"


def test_the_host_coming_back_does_not_take_the_role_back() -> None:
    core = make_room()
    core.join("a")
    core.join("b")
    core.drop("a")
    core.resume("a")
    assert core.room.host.pid == "b"


def test_a_takeover_of_the_host_keeps_the_host_role() -> None:
    core = make_room()
    core.join("a")
    other = core.join("b")
    core.join("a")
    assert core.room.host.pid == "a"
    assert other.of_type("host") == []
