"""Presence on real servers: join/leave, drops and the resume grace, the host, seats,
operator actions and the room lifecycle (contract sections 2, 5 and 6)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.helpers import collect_until, get_room, raw_join, state_until
from tickrelay.client import ConnectRefused, connect


def is_marker(marker: str) -> Callable[[dict[str, Any]], bool]:
    return lambda msg: msg["t"] == "event" and msg["d"] == marker


async def wait_room_gone(server, room_id: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while (await get_room(server, room_id)).status_code != 404:
            await asyncio.sleep(0.1)


@pytest.fixture
def short_grace(servers):
    return servers.get(resume_grace=1.0)


# join / leave ------------------------------------------------------------------------------


async def test_join_of_a_new_player_goes_to_every_other_member_spectators_included(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
        await connect(server.ws, room_id) as bob,
    ):
        expected = {"t": "join", "pid": bob.pid}
        assert await alice.wait_for("join") == expected
        assert await watcher.wait_for("join") == expected


async def test_a_player_gets_no_join_about_itself(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await alice.wait_for("join")
        await alice.send_event("marker")
        seen = await collect_until(bob, is_marker("marker"))
        assert [msg for msg in seen if msg["t"] == "join"] == []


async def test_leave_goes_to_every_other_member_spectators_included(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
        await connect(server.ws, room_id) as bob,
    ):
        assert await bob.leave() == 1000
        expected = {"t": "leave", "pid": bob.pid, "reason": "left"}
        assert await alice.wait_for("leave") == expected
        assert await watcher.wait_for("leave") == expected
        assert [msg for msg in bob.drain() if msg["t"] == "leave"] == []


async def test_a_player_closed_4000_by_the_server_leaves_at_once_with_reason_error(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await bob.send_raw(b"\xc1")  # never valid MessagePack
        assert await bob.wait_closed() == 4000
        gone = await alice.wait_for(where=lambda msg: msg["t"] in ("away", "leave"))
        assert gone == {"t": "leave", "pid": bob.pid, "reason": "error"}


# Drops -------------------------------------------------------------------------------------


async def test_a_close_without_leave_is_a_drop_members_get_away(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await connect(server.ws, room_id)
        await bob.close()
        gone = await alice.wait_for(where=lambda msg: msg["t"] in ("away", "leave"))
        assert gone == {"t": "away", "pid": bob.pid}


@pytest.mark.parametrize("code", [1001, 3000, 4000, 4999])
async def test_a_close_without_leave_is_a_drop_whatever_its_code(server, room_id, code):
    async with await connect(server.ws, room_id) as alice:
        ws, welcome = await raw_join(server, room_id)
        await ws.close(code=code)
        gone = await alice.wait_for(where=lambda msg: msg["t"] in ("away", "leave"))
        assert gone == {"t": "away", "pid": welcome["pid"]}


async def test_a_cut_tcp_connection_is_a_drop(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        ws, welcome = await raw_join(server, room_id)
        ws.transport.abort()
        await ws.wait_closed()
        gone = await alice.wait_for(where=lambda msg: msg["t"] in ("away", "leave"))
        assert gone == {"t": "away", "pid": welcome["pid"]}


async def test_a_dropped_player_stays_in_the_snapshot_with_its_state(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await connect(server.ws, room_id)
        seq = await bob.send_input({"x": 7})
        await state_until(bob, lambda mirror: mirror.acks.get(bob.pid) == seq)
        await bob.close()
        await alice.wait_for("away")
        async with await connect(server.ws, room_id) as carol:
            snap = await carol.wait_for("snap")
            assert snap["s"]["players"][bob.pid] == {"x": 7}
            assert snap["acks"][bob.pid] == seq
            assert (await get_room(server, room_id)).json()["players"] == 3


async def test_after_the_grace_a_dropped_player_leaves_with_reason_timeout(short_grace, room_id):
    async with await connect(short_grace.ws, room_id) as alice:
        bob = await connect(short_grace.ws, room_id)
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        await bob.close()
        assert await alice.wait_for("away") == {"t": "away", "pid": bob.pid}
        leave = await alice.wait_for("leave")
        assert leave == {"t": "leave", "pid": bob.pid, "reason": "timeout"}
        delta = await alice.wait_for("delta", where=lambda d: bob.pid in d["acks"])
        assert delta["d"]["players"][bob.pid] is None
        assert delta["acks"][bob.pid] is None


# Host --------------------------------------------------------------------------------------


async def test_the_first_seated_player_is_host_and_gets_a_host_message(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        assert alice.welcome["host"] == alice.pid
        assert await alice.wait_for("host") == {"t": "host", "pid": alice.pid}


async def test_a_later_player_is_told_the_host_in_its_welcome(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        assert bob.welcome["host"] == alice.pid


async def test_when_the_host_leaves_every_member_gets_host_with_the_next_player(server, room_id):
    alice = await connect(server.ws, room_id)
    async with (
        await connect(server.ws, room_id) as bob,
        await connect(server.ws, room_id) as carol,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        assert await alice.leave() == 1000
        await alice.close()
        expected = {"t": "host", "pid": bob.pid}
        assert await bob.wait_for("host") == expected  # the new host included
        assert await carol.wait_for("host") == expected
        assert await watcher.wait_for("host") == expected


async def test_the_host_role_skips_away_players(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await connect(server.ws, room_id)
        async with await connect(server.ws, room_id) as carol:
            await bob.close()
            await alice.wait_for("away")
            await alice.leave()
            host = await carol.wait_for("host", where=lambda msg: msg["pid"] != alice.pid)
            assert host == {"t": "host", "pid": carol.pid}


async def test_when_the_host_drops_the_role_passes_and_every_member_gets_host(server, room_id):
    alice = await connect(server.ws, room_id)
    async with await connect(server.ws, room_id) as bob, await connect(server.ws, room_id) as carol:
        await alice.close()
        expected = {"t": "host", "pid": bob.pid}
        assert await bob.wait_for("host", where=lambda msg: msg["pid"] != alice.pid) == expected
        assert await carol.wait_for("host") == expected
        assert bob.host == carol.host == bob.pid


async def test_with_no_seated_player_connected_the_host_becomes_null(server, room_id):
    async with await connect(server.ws, room_id, spectate=True) as watcher:
        alice = await connect(server.ws, room_id)
        await watcher.wait_for("host", where=lambda msg: msg["pid"] == alice.pid)
        await alice.close()
        assert await watcher.wait_for("host") == {"t": "host", "pid": None}


async def test_into_a_room_with_a_null_host_the_next_player_to_connect_takes_it(server, room_id):
    async with await connect(server.ws, room_id, spectate=True) as watcher:
        alice = await connect(server.ws, room_id)
        await alice.close()
        await watcher.wait_for("host", where=lambda msg: msg["pid"] is None)
        async with await connect(server.ws, room_id) as bob:
            assert bob.welcome["host"] == bob.pid
            assert await watcher.wait_for("host") == {"t": "host", "pid": bob.pid}


async def test_into_a_room_with_a_null_host_a_player_coming_back_takes_it(server, room_id):
    async with await connect(server.ws, room_id, spectate=True) as watcher:
        alice = await connect(server.ws, room_id)
        await alice.close()
        await watcher.wait_for("host", where=lambda msg: msg["pid"] is None)
        async with await connect(server.ws, room_id, resume=alice.resume_token) as back:
            taken = await back.wait_for("host", where=lambda msg: msg["pid"] is not None)
            assert taken == {"t": "host", "pid": alice.pid}
            assert await watcher.wait_for("host") == {"t": "host", "pid": alice.pid}


async def test_a_player_coming_back_into_a_room_with_a_null_host_is_told_so_in_its_welcome(
    server, room_id
):
    alice = await connect(server.ws, room_id)
    await alice.close()  # alone: the role becomes null
    async with await connect(server.ws, room_id, resume=alice.resume_token) as back:
        assert back.welcome["resumed"] is True
        assert back.welcome["host"] == alice.pid


async def test_a_former_host_coming_back_does_not_take_the_role_back(server, room_id):
    alice = await connect(server.ws, room_id)
    async with await connect(server.ws, room_id) as bob:
        await alice.close()
        await bob.wait_for("host", where=lambda msg: msg["pid"] == bob.pid)
        async with await connect(server.ws, room_id, resume=alice.resume_token) as back:
            assert back.welcome["host"] == bob.pid
            await bob.wait_for("back")
            await bob.send_event("marker")
            seen = await collect_until(back, is_marker("marker"))
            # Only the change it missed while away, from its gap: no take-back.
            assert [msg["pid"] for msg in seen if msg["t"] == "host"] == [bob.pid]
            assert back.host == bob.pid


async def test_only_the_host_may_send_a_room_patch(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        seq = await bob.send_input({"x": 1}, room={"map": "bob"})
        error = await bob.wait_for("error")
        assert (error["code"], error["ref"]) == ("not_host", seq)
        await alice.send_input({}, room={"map": "alice"})
        await state_until(bob, lambda mirror: mirror.room == {"map": "alice"})
        assert bob.mirror.players[bob.pid] == {}  # the refused input was not applied at all


# Seats -------------------------------------------------------------------------------------


async def test_players_in_their_resume_grace_hold_their_seats(server, room_id):
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        response = await http.post(
            "/rooms", json={"id": room_id, "max_players": 2}, headers=server.admin_headers()
        )
        assert response.status_code == 201, response.text
    async with await connect(server.ws, room_id) as alice:
        bob = await connect(server.ws, room_id)
        await bob.close()
        await alice.wait_for("away")
        with pytest.raises(ConnectRefused) as refused:
            await connect(server.ws, room_id)
        assert refused.value.code == 4009


# Operator actions --------------------------------------------------------------------------


async def test_kick_closes_the_player_4013_and_ends_its_seat(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
        await connect(server.ws, room_id) as bob,
    ):
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
            response = await http.post(
                f"/rooms/{room_id}/kick", json={"pid": bob.pid}, headers=server.admin_headers()
            )
        assert response.status_code == 204
        assert await bob.wait_closed() == 4013
        expected = {"t": "leave", "pid": bob.pid, "reason": "kicked"}
        assert await alice.wait_for("leave") == expected
        assert await watcher.wait_for("leave") == expected
        await state_until(alice, lambda mirror: bob.pid not in mirror.players)


async def test_delete_closes_every_member_4004_and_the_room_is_gone(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
            response = await http.delete(f"/rooms/{room_id}", headers=server.admin_headers())
        assert response.status_code == 204
        assert await alice.wait_closed() == 4004
        assert await watcher.wait_closed() == 4004
        assert (await get_room(server, room_id)).status_code == 404


# Room lifecycle ----------------------------------------------------------------------------


async def test_a_room_is_created_by_its_first_join(server, room_id):
    assert (await get_room(server, room_id)).status_code == 404
    async with await connect(server.ws, room_id):
        response = await get_room(server, room_id)
        assert response.status_code == 200
        assert response.json()["players"] == 1


async def test_an_empty_room_is_disposed_after_the_idle_timeout(servers, room_id):
    idle = servers.get(idle_timeout=1.0)
    async with await connect(idle.ws, room_id) as alice:
        assert await alice.leave() == 1000
    await wait_room_gone(idle, room_id)


async def test_a_room_with_a_player_in_its_grace_is_not_empty(servers, room_id):
    idle = servers.get(idle_timeout=1.0)
    async with await connect(idle.ws, room_id) as watcher:
        alice = await connect(idle.ws, room_id)
        await alice.close()
        await watcher.wait_for("away")
        assert await watcher.leave() == 1000
    await asyncio.sleep(2.5)  # well past the idle timeout
    response = await get_room(idle, room_id)
    assert response.status_code == 200
    assert response.json()["players"] == 1
    async with await connect(idle.ws, room_id, resume=alice.resume_token) as back:
        assert back.welcome["resumed"] is True
        assert await back.leave() == 1000
