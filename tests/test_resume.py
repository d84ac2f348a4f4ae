"""Resume on real servers (contract section 6): the same seat, the gap's reliable messages,
then a snap; dead tokens are 4012; a resume of a connected player takes over (4010)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import PRESENCE, collect_until, state_until
from tickrelay.client import ConnectRefused, connect


async def refused_code(server, room_id: str, resume: str) -> int | None:
    with pytest.raises(ConnectRefused) as refused:
        await connect(server.ws, room_id, resume=resume)
    return refused.value.code


async def dropped(server, room_id: str, observer) -> Any:
    """A player that joined, sent one applied input ``{"x": 1}`` and then dropped."""
    player = await connect(server.ws, room_id)
    seq = await player.send_input({"x": 1})
    await state_until(player, lambda mirror: mirror.acks.get(player.pid) == seq)
    await player.close()
    await observer.wait_for("away", where=lambda msg: msg["pid"] == player.pid)
    return player


# A resume inside the grace -----------------------------------------------------------------


async def test_resume_gives_the_same_pid_and_a_resumed_welcome_with_a_new_token(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await dropped(server, room_id, alice)
        async with await connect(server.ws, room_id, resume=bob.resume_token) as back:
            assert back.pid == bob.pid
            assert back.welcome["resumed"] is True
            assert back.welcome["spectator"] is False
            assert back.resume_token not in (None, bob.resume_token)


async def test_resume_delivers_the_gaps_reliable_messages_in_order_then_a_snap(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await dropped(server, room_id, alice)
        await alice.send_event({"n": 1})
        async with await connect(server.ws, room_id) as carol:
            await alice.wait_for("join")  # the join is in bob's gap now
            async with await connect(server.ws, room_id, resume=bob.resume_token) as back:
                first = [await back.recv() for _ in range(4)]
                assert [msg["t"] for msg in first] == ["welcome", "event", "join", "snap"]
                assert first[1] == {"t": "event", "from": alice.pid, "d": {"n": 1}}
                assert first[2] == {"t": "join", "pid": carol.pid}
                assert set(first[3]["s"]["players"]) == {alice.pid, bob.pid, carol.pid}


async def test_members_get_back_when_a_player_resumes(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        bob = await dropped(server, room_id, alice)
        async with await connect(server.ws, room_id, resume=bob.resume_token):
            assert await alice.wait_for("back") == {"t": "back", "pid": bob.pid}
            assert await watcher.wait_for("back") == {"t": "back", "pid": bob.pid}


async def test_the_state_and_the_ack_survive_a_resume(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await dropped(server, room_id, alice)
        async with await connect(
            server.ws, room_id, resume=bob.resume_token, initial_seq=bob.seq
        ) as back:
            snap = await back.wait_for("snap")
            assert snap["s"]["players"][bob.pid] == {"x": 1}
            assert snap["acks"][bob.pid] == bob.seq


async def test_inputs_continue_above_the_last_seq_after_a_resume(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await dropped(server, room_id, alice)
        async with await connect(
            server.ws, room_id, resume=bob.resume_token, initial_seq=bob.seq
        ) as back:
            seq = await back.send_input({"y": 2})
            assert seq == bob.seq + 1
            await state_until(back, lambda mirror: mirror.acks.get(bob.pid) == seq)
            assert back.mirror.players[bob.pid] == {"x": 1, "y": 2}


async def test_an_input_with_the_old_seq_is_stale_after_a_resume(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await dropped(server, room_id, alice)
        async with await connect(server.ws, room_id, resume=bob.resume_token) as back:
            await back.send_message({"t": "input", "seq": bob.seq, "d": {"x": 99}})
            error = await back.wait_for("error")
            assert (error["code"], error["ref"]) == ("stale", bob.seq)
            assert back.mirror.players[bob.pid] == {"x": 1}


# Dead tokens -------------------------------------------------------------------------------


async def test_the_previous_resume_token_dies_with_a_new_welcome(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        bob = await dropped(server, room_id, alice)
        async with await connect(server.ws, room_id, resume=bob.resume_token) as back:
            assert await refused_code(server, room_id, bob.resume_token) == 4012
            await back.ping()  # the refused attempt did not take the seat over
            assert back.connected


async def test_an_unknown_resume_token_is_4012(server, room_id):
    async with await connect(server.ws, room_id):
        assert await refused_code(server, room_id, "not-a-resume-token") == 4012


async def test_a_resume_token_after_the_grace_is_4012(servers, room_id):
    short = servers.get(resume_grace=1.0)
    async with await connect(short.ws, room_id) as alice:
        bob = await dropped(short, room_id, alice)
        await alice.wait_for("leave", where=lambda msg: msg["pid"] == bob.pid)
        assert await refused_code(short, room_id, bob.resume_token) == 4012


async def test_a_resume_token_for_another_room_is_4012(server, room_id):
    other_room = f"{room_id}-other"
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, other_room):
        bob = await dropped(server, room_id, alice)
        assert await refused_code(server, other_room, bob.resume_token) == 4012


# Takeover ----------------------------------------------------------------------------------


async def test_a_resume_of_a_connected_player_takes_over_and_closes_the_old_one_4010(
    server, room_id
):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        seq = await bob.send_input({"x": 1})
        await state_until(bob, lambda mirror: mirror.acks.get(bob.pid) == seq)
        async with await connect(
            server.ws, room_id, resume=bob.resume_token, initial_seq=bob.seq
        ) as newer:
            assert await bob.wait_closed() == 4010
            assert newer.pid == bob.pid
            assert newer.welcome["resumed"] is True
            snap = await newer.wait_for("snap")
            assert snap["s"]["players"][bob.pid] == {"x": 1}
            assert snap["acks"][bob.pid] == seq
            assert alice.host == alice.pid


async def test_a_takeover_shows_the_other_members_no_presence_change(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
        await connect(server.ws, room_id) as bob,
    ):
        await alice.wait_for("join", where=lambda msg: msg["pid"] == bob.pid)
        await watcher.wait_for("join", where=lambda msg: msg["pid"] == bob.pid)
        async with await connect(server.ws, room_id, resume=bob.resume_token) as newer:
            assert await bob.wait_closed() == 4010
            await newer.send_event("marker")
            for member in (alice, watcher):
                seen = await collect_until(member, lambda msg: msg["t"] == "event")
                assert seen[-1] == {"t": "event", "from": bob.pid, "d": "marker"}
                assert [msg for msg in seen if msg["t"] in PRESENCE] == []


async def test_a_host_taken_over_stays_host(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id) as bob,
        await connect(server.ws, room_id, resume=alice.resume_token) as newer,
    ):
        assert newer.welcome["host"] == alice.pid
        await newer.send_input({}, room={"round": 1})
        seen = await collect_until(
            bob, lambda msg: msg["t"] in ("snap", "delta") and bob.mirror.room == {"round": 1}
        )
        assert [msg for msg in seen if msg["t"] == "host"] == []


# Gap overflow ------------------------------------------------------------------------------


async def test_a_gap_within_its_bound_is_delivered_whole(servers, room_id):
    small = servers.get(reliable_queue_messages=8)
    async with await connect(small.ws, room_id) as alice:
        bob = await dropped(small, room_id, alice)
        for n in range(8):
            await alice.send_event(n)
        await alice.ping()  # the events were handled before this answer
        async with await connect(small.ws, room_id, resume=bob.resume_token) as back:
            seen = await collect_until(back, lambda msg: msg["t"] == "snap")
            assert [msg["d"] for msg in seen if msg["t"] == "event"] == list(range(8))


async def test_a_player_whose_gap_overflows_loses_its_seat_at_once(servers, room_id):
    small = servers.get(reliable_queue_messages=8)
    async with await connect(small.ws, room_id) as alice:
        bob = await dropped(small, room_id, alice)
        for n in range(9):
            await alice.send_event(n)
        leave = await alice.wait_for("leave")
        assert leave == {"t": "leave", "pid": bob.pid, "reason": "timeout"}
        assert await refused_code(small, room_id, bob.resume_token) == 4012
