"""Spectators on real servers (contract section 5): no seat, all the state and every
reliable broadcast, events but no input, their own bound, and resume without a seat."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.helpers import PRESENCE, collect_until, create_room, get_room, state_until
from tickrelay.client import ConnectRefused, connect


async def wait_away(server, room_id: str, pid: str, timeout: float = 5.0) -> None:
    """Until the server holds ``pid``'s place without a connection (its resume grace)."""
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        async with asyncio.timeout(timeout):
            while True:
                response = await http.get(
                    f"/rooms/{room_id}/connections", headers=server.admin_headers()
                )
                if any(entry["pid"] == pid and entry["away"] for entry in response.json()):
                    return
                await asyncio.sleep(0.05)


async def test_a_spectator_gets_a_pid_and_a_welcome_with_spectator_true(server, room_id):
    async with await connect(server.ws, room_id, spectate=True) as watcher:
        assert watcher.welcome["spectator"] is True
        assert watcher.welcome["resumed"] is False
        assert isinstance(watcher.pid, str) and watcher.pid


async def test_a_spectators_join_creates_the_room_without_taking_a_seat(server, room_id):
    async with await connect(server.ws, room_id, spectate=True) as watcher:
        assert watcher.welcome["host"] is None
        description = (await get_room(server, room_id)).json()
        assert (description["players"], description["spectators"]) == (0, 1)


async def test_a_spectator_receives_a_snap_then_the_state_changes(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        snap = await watcher.wait_for("snap")
        assert snap["s"]["players"] == {alice.pid: {}}
        await alice.send_input({"x": 3})
        await state_until(watcher, lambda mirror: mirror.players.get(alice.pid) == {"x": 3})
        assert watcher.mirror.acks == {alice.pid: 1}


async def test_a_spectator_is_not_in_the_snapshot(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        await alice.send_input({"x": 1})
        await state_until(alice, lambda mirror: mirror.acks.get(alice.pid) == 1)
        await state_until(watcher, lambda mirror: mirror.acks.get(alice.pid) == 1)
        assert set(alice.mirror.players) == set(watcher.mirror.players) == {alice.pid}
        assert set(watcher.mirror.acks) == {alice.pid}


async def test_a_spectator_receives_events_and_presence_broadcasts(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        await alice.send_event({"chat": "hi"})
        async with await connect(server.ws, room_id) as bob:
            await bob.leave()
        seen = [
            msg
            for msg in await collect_until(watcher, lambda msg: msg["t"] == "leave")
            if msg["t"] in ("event", "join", "leave")
        ]
        assert seen == [
            {"t": "event", "from": alice.pid, "d": {"chat": "hi"}},
            {"t": "join", "pid": bob.pid},
            {"t": "leave", "pid": bob.pid, "reason": "left"},
        ]


async def test_a_spectators_input_is_answered_with_error_spectator(server, room_id):
    async with await connect(server.ws, room_id, spectate=True) as watcher:
        seq = await watcher.send_input({"x": 1})
        error = await watcher.wait_for("error")
        assert (error["code"], error["ref"]) == ("spectator", seq)


async def test_a_spectator_may_send_events(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        await watcher.send_event({"cheer": True})
        event = await alice.wait_for("event")
        assert event == {"t": "event", "from": watcher.pid, "d": {"cheer": True}}


async def test_spectators_cause_no_join_leave_away_or_back(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        async with await connect(server.ws, room_id, spectate=True) as leaver:
            assert await leaver.leave() == 1000
        dropper = await connect(server.ws, room_id, spectate=True)
        await dropper.close()
        await wait_away(server, room_id, dropper.pid)
        async with await connect(server.ws, room_id, spectate=True, resume=dropper.resume_token):
            await bob.send_event("marker")
            seen = await collect_until(alice, lambda msg: msg["t"] == "event")
        assert seen[-1]["d"] == "marker"
        assert [msg for msg in seen if msg["t"] in PRESENCE and msg["pid"] != bob.pid] == []


async def test_spectators_have_their_own_bound_apart_from_the_seats(server, room_id):
    await create_room(server, room_id, max_players=1, max_spectators=1)
    async with await connect(server.ws, room_id), await connect(server.ws, room_id, spectate=True):
        with pytest.raises(ConnectRefused) as refused:
            await connect(server.ws, room_id, spectate=True)
        assert refused.value.code == 4009


async def test_a_spectator_resumes_with_resumed_true_and_no_seat(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        watcher = await connect(server.ws, room_id, spectate=True)
        await watcher.close()
        await wait_away(server, room_id, watcher.pid)
        await alice.send_event("missed")
        async with await connect(
            server.ws, room_id, spectate=True, resume=watcher.resume_token
        ) as back:
            assert back.pid == watcher.pid
            assert (back.welcome["resumed"], back.welcome["spectator"]) == (True, True)
            first = [await back.recv() for _ in range(3)]
            assert [msg["t"] for msg in first] == ["welcome", "event", "snap"]
            assert first[1] == {"t": "event", "from": alice.pid, "d": "missed"}
            assert set(first[2]["s"]["players"]) == {alice.pid}
            description = (await get_room(server, room_id)).json()
            assert (description["players"], description["spectators"]) == (1, 1)
