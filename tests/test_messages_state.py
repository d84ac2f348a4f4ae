"""Ticks and state on real servers (contract section 3): no state without a change, acks,
deltas chained on the previous tick, tick numbers that only grow."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from tests.helpers import acked, state_until
from tickrelay.client import RoomClient, connect
from tickrelay.protocol import apply_patch


async def test_a_quiet_room_sends_no_state(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        seq = await alice.send_input({"x": 1})
        await state_until(alice, acked(alice, seq))
        alice.drain()
        with pytest.raises(TimeoutError):
            await alice.next_state(timeout=0.5)


async def test_events_and_pings_send_no_state(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        await state_until(bob, lambda mirror: alice.pid in mirror.players)
        bob.drain()
        await alice.send_event("boo")
        await alice.ping()
        assert (await bob.wait_for("event"))["d"] == "boo"
        with pytest.raises(TimeoutError):
            await bob.next_state(timeout=0.5)


async def test_an_input_that_changes_nothing_still_sends_its_ack(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_input({"x": 1})
        await state_until(alice, acked(alice, 1))
        await alice.send_input({"x": 1, "gone": None})
        delta = await alice.wait_for("delta", where=lambda msg: msg["acks"] == {alice.pid: 2})
        assert alice.pid not in delta["d"].get("players", {})
        assert alice.mirror.players[alice.pid] == {"x": 1}


async def test_host_room_patch_shows_up_in_the_room_state_for_everyone(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec="json") as bob,
    ):
        assert alice.host == alice.pid
        await alice.send_input({}, room={"map": "dust", "rules": {"ff": False, "time": 300}})
        seq = await alice.send_input({}, room={"rules": {"time": None}, "round": 1})
        expected = {"map": "dust", "rules": {"ff": False}, "round": 1}
        await state_until(bob, acked(bob, seq, alice.pid))
        assert bob.mirror.room == expected
        async with await connect(server.ws, room_id, spectate=True) as carol:
            snap = await carol.wait_for("snap")
            assert snap["s"]["room"] == expected


async def test_deltas_chain_over_a_run_of_inputs(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec="json") as bob,
    ):
        mine: dict[str, Any] = {}
        theirs: dict[str, Any] = {}
        for n in range(40):
            patch = {"n": n, f"slot{n % 7}": [n] * (n % 4), "drop": None if n % 3 else n}
            mine = apply_patch(mine, patch)
            await alice.send_input(patch)
            if n % 2:
                other = {"pos": {"x": n, "y": -n}, "tag": f"t{n}"}
                theirs = apply_patch(theirs, other)
                await bob.send_input(other)
            if n % 5 == 0:
                await asyncio.sleep(0.02)
        for client in (alice, bob):
            await state_until(
                client,
                lambda mirror: (
                    mirror.acks.get(alice.pid) == alice.seq and mirror.acks.get(bob.pid) == bob.seq
                ),
            )
            assert client.mirror_errors == []
            assert client.mirror.players == {alice.pid: mine, bob.pid: theirs}


async def test_tick_numbers_only_grow(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        ticks: list[int] = []

        def record(msg: dict[str, Any]) -> None:
            if msg["t"] in ("snap", "delta"):
                ticks.append(msg["tick"])

        alice.on_message = record
        for n in range(10):
            await alice.send_input({"n": n})
            async with await connect(server.ws, room_id) as guest:
                await guest.send_input({"hi": n})
            await asyncio.sleep(0.01)
        await state_until(alice, acked(alice, alice.seq))
        assert len(ticks) >= 3
        assert all(later > earlier for earlier, later in itertools.pairwise(ticks))
        assert alice.mirror_errors == []


async def test_delta_base_is_the_previous_state_tick(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        states: list[dict[str, Any]] = []
        alice.on_message = lambda msg: msg["t"] in ("snap", "delta") and states.append(msg)
        for n in range(10):
            await alice.send_input({"n": n})
            await asyncio.sleep(0.01)
        await state_until(alice, acked(alice, alice.seq))
        assert states[0]["t"] == "snap"
        for earlier, later in itertools.pairwise(states):
            assert later["t"] == "delta"
            assert later["base"] == earlier["tick"]


async def test_acks_keys_are_always_the_players_keys(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        mismatches: list[Any] = []

        def check(msg: dict[str, Any]) -> None:
            if msg["t"] == "snap" and set(msg["acks"]) != set(msg["s"]["players"]):
                mismatches.append(msg)
            if msg["t"] in ("snap", "delta") and set(alice.mirror.acks) != set(
                alice.mirror.players
            ):
                mismatches.append(msg)

        alice.on_message = check
        guests: list[RoomClient] = []
        try:
            for n in range(6):
                guest = await connect(server.ws, room_id, codec="json" if n % 2 else "msgpack")
                guests.append(guest)
                await guest.send_input({"n": n})
                await alice.send_input({"n": n})
            await guests[0].leave()
            await guests[1].send_raw(b"\xc1")  # closed 4000: the seat ends
            await guests[2].close()  # a drop: the seat stays (away) for the grace
            await guests[3].send_input({"last": True})
            gone = {guests[0].pid, guests[1].pid}
            await state_until(
                alice,
                lambda mirror: (
                    gone.isdisjoint(mirror.players) and mirror.acks.get(guests[3].pid) == 2
                ),
            )
            async with await connect(server.ws, room_id) as late:
                snap = await late.wait_for("snap")
                assert set(snap["acks"]) == set(snap["s"]["players"])
                assert guests[2].pid in snap["s"]["players"]
        finally:
            for guest in guests:
                await guest.close()
        assert mismatches == []
        assert set(alice.mirror.acks) == set(alice.mirror.players)
