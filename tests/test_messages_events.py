"""`event` on real servers (contract section 2, client to server): relayed at once to the
other members, spectators included, or only to the pids in `to`."""

from __future__ import annotations

import pytest

from tests.helpers import answers, errors_in
from tickrelay.client import connect


async def test_event_goes_to_every_other_member_spectators_included(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec="json") as bob,
        await connect(server.ws, room_id, spectate=True) as carol,
    ):
        await alice.send_event({"chat": "hi", "n": [1, 2]})
        expected = {"t": "event", "from": alice.pid, "d": {"chat": "hi", "n": [1, 2]}}
        assert await bob.wait_for("event") == expected
        assert await carol.wait_for("event") == expected
        assert [msg for msg in await answers(alice) if msg["t"] == "event"] == []


@pytest.mark.parametrize("d", [None, 0, -1.25, "text", [1, "a", None], {"k": {"j": []}}])
async def test_event_carries_any_json_value_to_both_codecs(server, room_id, d):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec="json") as bob,
        await connect(server.ws, room_id) as carol,
    ):
        await alice.send_event(d)
        assert (await bob.wait_for("event"))["d"] == d
        assert (await carol.wait_for("event"))["d"] == d


async def test_event_with_to_reaches_only_the_listed_pids(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id) as bob,
        await connect(server.ws, room_id, spectate=True) as carol,
    ):
        await alice.send_event("for bob", to=[bob.pid])
        await alice.send_event("for all")
        assert (await bob.wait_for("event"))["d"] == "for bob"
        assert (await carol.wait_for("event"))["d"] == "for all"


async def test_event_to_a_spectator_reaches_it(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id) as bob,
        await connect(server.ws, room_id, spectate=True) as carol,
    ):
        await alice.send_event("psst", to=[carol.pid])
        await alice.send_event("for all")
        assert (await carol.wait_for("event"))["d"] == "psst"
        assert (await bob.wait_for("event"))["d"] == "for all"


async def test_unknown_pids_in_to_are_ignored(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await alice.send_event("hello", to=["nobody", bob.pid, "ghost"])
        await alice.send_event("second", to=["nobody"])
        await alice.send_event("third")
        received = [(await bob.wait_for("event"))["d"] for _ in range(2)]
        assert received == ["hello", "third"]
        assert errors_in(await answers(alice)) == []


async def test_event_with_empty_to_reaches_nobody(server, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await alice.send_event("nobody", to=[])
        await alice.send_event("everybody")
        assert (await bob.wait_for("event"))["d"] == "everybody"


async def test_spectator_may_send_events_to_the_players(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec="json") as bob,
        await connect(server.ws, room_id, spectate=True) as carol,
    ):
        await carol.send_event({"cheer": True})
        expected = {"t": "event", "from": carol.pid, "d": {"cheer": True}}
        assert await alice.wait_for("event") == expected
        assert await bob.wait_for("event") == expected


async def test_spectators_receive_events_from_other_spectators(server, room_id):
    async with (
        await connect(server.ws, room_id, spectate=True) as carol,
        await connect(server.ws, room_id, spectate=True) as dave,
    ):
        await carol.send_event("hi dave")
        assert await dave.wait_for("event") == {"t": "event", "from": carol.pid, "d": "hi dave"}
