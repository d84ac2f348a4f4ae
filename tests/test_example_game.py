"""The tag example (examples/tag.py) played on a real server by real clients."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

from tests.helpers import state_until
from tickrelay.client import ConnectRefused, connect

RATE = 20  # the server's default tick rate: one simulation step per tick
FAST = {"speed": 100}  # 5 arena units per step: a chase across the arena takes about 1 s


@pytest.fixture(scope="module")
def tag_server(servers):
    return servers.get(logic_modules=["tickrelay.examples.tag"])


async def create_tag_room(server, room_id: str, **meta: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post(
            "/rooms",
            json={"id": room_id, "logic": "tag", "meta": meta},
            headers=server.admin_headers(),
        )
    assert response.status_code == 201, response.text
    return response.json()


def position(client, pid: str) -> tuple[float, float]:
    state = client.mirror.players[pid]
    return state["x"], state["y"]


async def chase(hunter, target_pid: str, timeout: float = 10.0) -> None:
    """Steer ``hunter`` at the target's mirrored position until the room says it was tagged."""
    await state_until(hunter, lambda mirror: target_pid in mirror.players)
    sent = None
    async with asyncio.timeout(timeout):
        while hunter.mirror.room.get("it") != target_pid:
            (hx, hy), (tx, ty) = position(hunter, hunter.pid), position(hunter, target_pid)
            length = math.hypot(tx - hx, ty - hy) or 1.0
            direction = [round((tx - hx) / length, 2), round((ty - hy) / length, 2)]
            if direction != sent:
                await hunter.send_input({"dir": direction})
                sent = direction
            await hunter.next_state(timeout=None)


# Joining ----------------------------------------------------------------------------------


async def test_players_spawn_at_fixed_slots_and_the_first_is_it(tag_server, room_id):
    await create_tag_room(tag_server, room_id)
    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
    ):
        snap = await bob.wait_for("snap")
        assert snap["s"]["players"] == {
            alice.pid: {"x": 10.0, "y": 10.0, "dir": [0, 0]},
            bob.pid: {"x": 90.0, "y": 90.0, "dir": [0, 0]},
        }
        room = snap["s"]["room"]
        assert (room["it"], room["arena"], room["scores"]) == (
            alice.pid,
            [100.0, 100.0],
            {alice.pid: 0, bob.pid: 0},
        )


async def test_joining_a_closed_game_is_refused_with_4003(tag_server, room_id):
    await create_tag_room(tag_server, room_id, closed=True)
    with pytest.raises(ConnectRefused) as refused:
        await connect(tag_server.ws, room_id)
    assert (refused.value.code, refused.value.reason) == (4003, "this game is closed")


async def test_spectators_may_watch_a_closed_game(tag_server, room_id):
    await create_tag_room(tag_server, room_id, closed=True)
    async with await connect(tag_server.ws, room_id, spectate=True) as watcher:
        snap = await watcher.wait_for("snap")
        assert snap["s"]["players"] == {}
        assert "arena" in snap["s"]["room"]


async def test_matchmake_finds_or_creates_a_tag_room(tag_server, room_id):
    async with httpx.AsyncClient(base_url=tag_server.http) as http:
        body = {"logic": "tag", "meta": {"ladder": room_id}}
        first = (await http.post("/matchmake", json=body)).json()
        again = (await http.post("/matchmake", json=body)).json()
        described = (await http.get(f"/rooms/{first['room']}")).json()
    assert again["room"] == first["room"]
    assert described["logic"] == "tag"
    async with await connect(tag_server.ws, first["room"]) as alice:
        snap = await alice.wait_for("snap")
        assert snap["s"]["room"]["it"] == alice.pid


# Movement ---------------------------------------------------------------------------------


async def test_intent_moves_the_player_at_fixed_speed_and_nobody_else(tag_server, room_id):
    await create_tag_room(tag_server, room_id, speed=20)  # 1 unit per step
    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
    ):
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        await alice.send_input({"dir": [1, 0]})
        await state_until(alice, lambda mirror: mirror.players[alice.pid]["x"] >= 15)
        x, y = position(alice, alice.pid)
        assert y == 10.0
        assert x - 10.0 == round(x - 10.0)  # whole steps of speed / rate
        assert position(alice, bob.pid) == (90.0, 90.0)


async def test_intent_is_clamped_to_unit_length(tag_server, room_id):
    await create_tag_room(tag_server, room_id)
    async with await connect(tag_server.ws, room_id) as alice:
        await alice.send_input({"dir": [30, 40]})
        await state_until(alice, lambda mirror: mirror.players[alice.pid]["dir"] != [0, 0])
        assert alice.mirror.players[alice.pid]["dir"] == [0.6, 0.8]
        await alice.send_input({"dir": [0.25, 0]})
        await state_until(alice, lambda mirror: mirror.players[alice.pid]["dir"][1] == 0)
        assert alice.mirror.players[alice.pid]["dir"] == [0.25, 0]


async def test_input_that_sets_a_position_is_refused_and_changes_nothing(tag_server, room_id):
    await create_tag_room(tag_server, room_id)
    async with await connect(tag_server.ws, room_id) as alice:
        await alice.wait_for("snap")
        seq = await alice.send_input({"x": 50, "y": 50})
        error = await alice.wait_for("error")
        assert (error["code"], error["ref"]) == ("bad_message", seq)
        await alice.send_input({"dir": [0, 0]})  # a valid input: its ack shows a later tick
        await state_until(alice, lambda mirror: mirror.acks[alice.pid] == seq + 1)
        assert position(alice, alice.pid) == (10.0, 10.0)


async def test_room_patch_from_the_host_is_refused(tag_server, room_id):
    await create_tag_room(tag_server, room_id)
    async with await connect(tag_server.ws, room_id) as alice:
        await alice.wait_for("snap")
        seq = await alice.send_input({}, room={"it": None, "tags": 99})
        error = await alice.wait_for("error")
        assert (error["code"], error["ref"]) == ("bad_message", seq)
        await alice.send_input({"dir": [0, 0]})  # a valid input: its ack shows a later tick
        await state_until(alice, lambda mirror: mirror.acks[alice.pid] == seq + 1)
        assert alice.mirror.room["tags"] == 0
        assert alice.mirror.room["it"] == alice.pid


async def test_arena_bounds_hold(tag_server, room_id):
    await create_tag_room(tag_server, room_id, **FAST)
    seen: list[tuple[float, float]] = []

    def cornered(mirror) -> bool:
        seen.extend((p["x"], p["y"]) for p in mirror.players.values())
        corners = {(p["x"], p["y"]) for p in mirror.players.values()}
        return corners == {(0.0, 0.0), (100.0, 100.0)}

    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
    ):
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        await alice.send_input({"dir": [-1, -1]})
        await bob.send_input({"dir": [1, 1]})
        await state_until(alice, cornered)
    assert all(0 <= x <= 100 and 0 <= y <= 100 for x, y in seen)


# Tagging ----------------------------------------------------------------------------------


async def test_it_tags_the_player_it_catches_and_the_room_records_it(tag_server, room_id):
    await create_tag_room(tag_server, room_id, **FAST)
    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
    ):
        await chase(alice, bob.pid)
        room = alice.mirror.room
        assert (room["it"], room["tags"], room["scores"]) == (
            bob.pid,
            1,
            {alice.pid: 1, bob.pid: 0},
        )
        assert position(alice, bob.pid) == (90.0, 90.0)  # bob never moved: no intent


async def test_tag_is_announced_by_an_event_from_the_server(tag_server, room_id):
    await create_tag_room(tag_server, room_id, **FAST)
    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
    ):
        await chase(alice, bob.pid)
        event = await bob.wait_for("event")
        assert event["from"] is None
        assert {k: event["d"][k] for k in ("type", "by", "it")} == {
            "type": "tag",
            "by": alice.pid,
            "it": bob.pid,
        }


async def test_tag_back_waits_for_the_cooldown(tag_server, room_id):
    """Everyone is always in range: alice tags bob at once, bob tags back after the cooldown."""
    await create_tag_room(tag_server, room_id, radius=1000, cooldown=0.5)
    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
    ):
        first = await alice.wait_for("event")
        back = await alice.wait_for("event")
    assert (first["d"]["by"], first["d"]["it"]) == (alice.pid, bob.pid)
    assert (back["d"]["by"], back["d"]["it"]) == (bob.pid, alice.pid)
    assert back["d"]["tick"] - first["d"]["tick"] == 0.5 * RATE


async def test_it_passes_to_the_earliest_remaining_player_when_it_leaves(tag_server, room_id):
    await create_tag_room(tag_server, room_id)
    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
        await connect(tag_server.ws, room_id) as carol,
    ):
        await state_until(
            carol, lambda mirror: mirror.room.get("it") == alice.pid and len(mirror.players) == 3
        )
        await alice.leave()
        await state_until(carol, lambda mirror: alice.pid not in mirror.players)
        await state_until(carol, lambda mirror: mirror.room.get("it") == bob.pid)
        assert carol.mirror.room["scores"] == {bob.pid: 0, carol.pid: 0}


# Events -----------------------------------------------------------------------------------


async def test_cheat_event_is_not_relayed_but_a_taunt_is(tag_server, room_id):
    await create_tag_room(tag_server, room_id)
    async with (
        await connect(tag_server.ws, room_id) as alice,
        await connect(tag_server.ws, room_id) as bob,
    ):
        await alice.send_event({"type": "cheat", "x": 90, "y": 90})
        await alice.send_event({"type": "taunt", "text": "too slow"})
        event = await bob.wait_for("event")  # events are ordered: the cheat would be first
        assert event == {
            "t": "event",
            "from": alice.pid,
            "d": {"type": "taunt", "text": "too slow"},
        }
