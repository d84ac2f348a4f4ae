"""A room end to end on a real server: welcome, snap, deltas, acks, events, leave."""

from __future__ import annotations

from tests.helpers import state_until
from tickrelay.client import connect


async def test_first_player_gets_welcome_as_host_then_a_snap_with_itself(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        assert alice.welcome["host"] == alice.pid
        snap = await alice.wait_for("snap")
        assert snap["s"]["players"] == {alice.pid: {}}
        assert snap["acks"] == {alice.pid: 0}


async def test_input_is_merged_into_the_senders_state_and_acked(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.wait_for("snap")
        seq = await alice.send_input({"x": 1, "y": {"z": 2}})
        delta = await alice.wait_for("delta")
        assert delta["d"] == {"players": {alice.pid: {"x": 1, "y": {"z": 2}}}}
        assert delta["acks"] == {alice.pid: seq}
        assert alice.mirror.players[alice.pid] == {"x": 1, "y": {"z": 2}}


async def test_other_players_see_the_change_in_their_next_delta(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec="json") as bob,
    ):
        await bob.wait_for("snap")
        await alice.send_input({"x": 5})
        await bob.wait_for("delta", where=lambda d: alice.pid in d["d"].get("players", {}))
        assert bob.mirror.players[alice.pid] == {"x": 5}
        assert bob.mirror.acks[alice.pid] == 1


async def test_event_is_relayed_to_the_others_but_not_the_sender(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await alice.send_event({"chat": "hi"})
        event = await bob.wait_for("event")
        assert event == {"t": "event", "from": alice.pid, "d": {"chat": "hi"}}
        assert [m for m in alice.drain() if m["t"] == "event"] == []


async def test_leave_closes_with_1000_and_members_get_leave_left(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        code = await bob.leave()
        assert code == 1000
        leave = await alice.wait_for("leave")
        assert leave == {"t": "leave", "pid": bob.pid, "reason": "left"}
        delta = await alice.wait_for("delta", where=lambda d: bob.pid in d["acks"])
        assert delta["d"]["players"][bob.pid] is None
        assert delta["acks"][bob.pid] is None
