"""The room logic hook contract (server/logic.py), with the small logics of logic_fixtures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import state_until
from tickrelay.client import ConnectRefused, connect


@pytest.fixture(scope="module")
def logic_server(servers):
    return servers.get(logic_modules=["tests.logic_fixtures"])


async def create_room(
    server, room_id: str, logic: str | None, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": room_id, "meta": meta or {}}
    if logic is not None:
        body["logic"] = logic
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post("/rooms", json=body, headers=server.admin_headers())
    assert response.status_code == 201, response.text
    return response.json()


async def describe(server, room_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.get(f"/rooms/{room_id}")
    assert response.status_code == 200
    return response.json()


# on_create --------------------------------------------------------------------------------


async def test_on_create_failure_answers_500_and_keeps_no_room(logic_server, room_id):
    async with httpx.AsyncClient(base_url=logic_server.http) as http:
        created = await http.post(
            "/rooms",
            json={"id": room_id, "logic": "crash_on_create"},
            headers=logic_server.admin_headers(),
        )
        assert created.status_code == 500
        assert "failed to start" in created.json()["detail"]
        assert (await http.get(f"/rooms/{room_id}")).status_code == 404


# on_join ----------------------------------------------------------------------------------


async def test_on_join_refusal_closes_with_its_code_and_reason(logic_server, room_id):
    await create_room(logic_server, room_id, "one_seat")
    async with await connect(logic_server.ws, room_id):
        with pytest.raises(ConnectRefused) as refused:
            await connect(logic_server.ws, room_id)
    assert (refused.value.code, refused.value.reason) == (4009, "table for one")


async def test_refused_join_takes_no_seat_and_announces_nothing(logic_server, room_id):
    await create_room(logic_server, room_id, "one_seat")
    async with await connect(logic_server.ws, room_id) as alice:
        await alice.wait_for("snap")
        with pytest.raises(ConnectRefused):
            await connect(logic_server.ws, room_id)
        await alice.ping()  # every message sent before the pong is queued by now
        assert [m["t"] for m in alice.drain() if m["t"] in ("join", "delta")] == []
        assert (await describe(logic_server, room_id))["players"] == 1


async def test_on_join_failure_refuses_with_1011_and_the_room_goes_on(logic_server, room_id):
    await create_room(logic_server, room_id, "crash_on_second_join")
    async with await connect(logic_server.ws, room_id) as alice:
        with pytest.raises(ConnectRefused) as refused:
            await connect(logic_server.ws, room_id)
        assert refused.value.code == 1011
        await alice.send_input({"still": "here"})
        await state_until(alice, lambda mirror: mirror.players.get(alice.pid) == {"still": "here"})


async def test_state_returned_by_on_join_is_in_the_joining_players_first_snap(
    logic_server, room_id
):
    await create_room(logic_server, room_id, "spawner")
    async with (
        await connect(logic_server.ws, room_id) as alice,
        await connect(logic_server.ws, room_id) as bob,
    ):
        snap = await bob.wait_for("snap")
        assert snap["s"]["players"] == {
            alice.pid: {"hp": 100, "slot": 1},
            bob.pid: {"hp": 100, "slot": 2},
        }


# on_event ---------------------------------------------------------------------------------


async def test_on_event_returning_false_keeps_the_event_from_being_relayed(logic_server, room_id):
    await create_room(logic_server, room_id, "no_secrets")
    async with (
        await connect(logic_server.ws, room_id) as alice,
        await connect(logic_server.ws, room_id) as bob,
    ):
        await alice.send_event({"secret": "plans"})
        await alice.send_event({"chat": "hello"})
        event = await bob.wait_for("event")  # events are ordered: the secret would be first
        assert event == {"t": "event", "from": alice.pid, "d": {"chat": "hello"}}


# on_tick ----------------------------------------------------------------------------------


async def test_on_tick_of_active_logic_changes_state_without_any_input(logic_server, room_id):
    await create_room(logic_server, room_id, "clock")
    async with await connect(logic_server.ws, room_id) as alice:
        await alice.wait_for("snap")
        first = alice.mirror.room.get("ticks", 0)
        await state_until(alice, lambda mirror: mirror.room.get("ticks", 0) >= first + 3)
        assert alice.seq == 0
        assert alice.mirror.room["tick"] == alice.mirror.tick


# on_leave ---------------------------------------------------------------------------------


async def test_on_leave_is_called_with_left_after_a_leave(logic_server, room_id):
    await create_room(logic_server, room_id, "ledger")
    async with (
        await connect(logic_server.ws, room_id) as alice,
        await connect(logic_server.ws, room_id) as bob,
    ):
        await bob.leave()
        await state_until(alice, lambda mirror: bob.pid in mirror.room.get("left", {}))
        assert alice.mirror.room["left"] == {bob.pid: "left"}


async def test_on_leave_is_called_with_kicked_after_an_operator_kick(logic_server, room_id):
    await create_room(logic_server, room_id, "ledger")
    async with (
        await connect(logic_server.ws, room_id) as alice,
        await connect(logic_server.ws, room_id) as bob,
    ):
        async with httpx.AsyncClient(base_url=logic_server.http) as http:
            response = await http.post(
                f"/rooms/{room_id}/kick",
                json={"pid": bob.pid},
                headers=logic_server.admin_headers(),
            )
        assert response.status_code == 204
        await state_until(alice, lambda mirror: bob.pid in mirror.room.get("left", {}))
        assert alice.mirror.room["left"] == {bob.pid: "kicked"}


# on_input failures ------------------------------------------------------------------------


async def test_on_input_exception_answers_bad_message_and_the_room_goes_on(logic_server, room_id):
    await create_room(logic_server, room_id, "fragile")
    async with (
        await connect(logic_server.ws, room_id) as alice,
        await connect(logic_server.ws, room_id) as bob,
    ):
        seq = await alice.send_input({"boom": True})
        error = await alice.wait_for("error")
        assert (error["code"], error.get("ref")) == ("bad_message", seq)
        await bob.send_input({"bob": 1})
        await alice.send_input({"alice": 2})
        await state_until(
            bob,
            lambda mirror: (
                mirror.players.get(bob.pid) == {"bob": 1}
                and mirror.players.get(alice.pid) == {"alice": 2}
            ),
        )


async def test_on_input_exception_undoes_the_senders_and_the_room_state(logic_server, room_id):
    await create_room(logic_server, room_id, "fragile")
    async with await connect(logic_server.ws, room_id) as alice:
        await alice.send_input({"before": 1}, room={"kept": True})
        await state_until(alice, lambda mirror: mirror.acks.get(alice.pid) == 1)
        await alice.send_input({"boom": True})
        await alice.wait_for("error")
        await alice.send_input({"after": 3})
        await state_until(alice, lambda mirror: mirror.acks.get(alice.pid) == 3)
        assert alice.mirror.players[alice.pid] == {"before": 1, "after": 3}
        assert alice.mirror.room == {"kept": True}


async def test_on_input_exception_undoes_changes_to_other_players_too(logic_server, room_id):
    await create_room(logic_server, room_id, "fragile")
    async with (
        await connect(logic_server.ws, room_id) as alice,
        await connect(logic_server.ws, room_id) as bob,
    ):
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        await alice.send_input({"boom": True})
        await alice.wait_for("error")
        await bob.send_input({"bob": 1})
        await state_until(alice, lambda mirror: mirror.acks.get(bob.pid) == 1)
        assert alice.mirror.players == {alice.pid: {}, bob.pid: {"bob": 1}}


async def test_input_refused_answers_bad_message_with_its_reason_and_no_ack(logic_server, room_id):
    await create_room(logic_server, room_id, "fragile")
    async with await connect(logic_server.ws, room_id) as alice:
        seq = await alice.send_input({"refuse": True})
        error = await alice.wait_for("error")
        assert error == {
            "t": "error",
            "code": "bad_message",
            "msg": "refused on purpose",
            "ref": seq,
        }
        await alice.send_input({"next": 1})
        await state_until(alice, lambda mirror: mirror.acks.get(alice.pid) == seq + 1)
        assert alice.mirror.players[alice.pid] == {"next": 1}


# The default ------------------------------------------------------------------------------


async def test_default_relay_logic_merges_player_inputs_and_host_room_patches(
    logic_server, room_id
):
    room = await create_room(logic_server, room_id, None)
    assert room["logic"] == "relay"
    async with await connect(logic_server.ws, room_id) as alice:
        await alice.send_input({"a": 1, "n": {"x": 1, "y": 2}}, room={"r": 1})
        await alice.send_input({"b": 2, "n": {"x": None}}, room={"s": 2})
        await state_until(alice, lambda mirror: mirror.acks.get(alice.pid) == 2)
        assert alice.mirror.players[alice.pid] == {"a": 1, "b": 2, "n": {"y": 2}}
        assert alice.mirror.room == {"r": 1, "s": 2}
