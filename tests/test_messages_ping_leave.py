"""`ping` and `leave` on real servers (contract section 2, client to server), and unknown
fields (ignored)."""

from __future__ import annotations

import pytest

from tests.helpers import acked, state_until
from tickrelay.client import connect


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_ping_is_answered_with_pong_echoing_id_and_ct(server, room_id, codec):
    async with await connect(server.ws, room_id, codec=codec) as alice:
        await alice.send_message({"t": "ping", "id": 41, "ct": 1234.5})
        pong = await alice.wait_for("pong")
        assert set(pong) == {"t", "id", "ct", "st"}
        assert (pong["id"], pong["ct"]) == (41, 1234.5)
        assert type(pong["st"]) is int
        assert pong["st"] > 1_600_000_000_000


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_pong_has_no_ct_when_the_ping_had_none(server, room_id, codec):
    async with await connect(server.ws, room_id, codec=codec) as alice:
        await alice.send_message({"t": "ping", "id": 7})
        pong = await alice.wait_for("pong")
        assert set(pong) == {"t", "id", "st"}
        assert pong["id"] == 7


async def test_pong_echoes_an_integer_ct_as_an_integer(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_message({"t": "ping", "id": 1, "ct": 1_700_000_000_123})
        pong = await alice.wait_for("pong")
        assert pong["ct"] == 1_700_000_000_123
        assert type(pong["ct"]) is int


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_leave_closes_1000_and_ends_the_seat(server, room_id, codec):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec=codec) as bob,
    ):
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        assert await bob.leave() == 1000
        assert await alice.wait_for("leave") == {"t": "leave", "pid": bob.pid, "reason": "left"}
        await state_until(alice, lambda mirror: bob.pid not in mirror.players)
        assert bob.pid not in alice.mirror.acks


async def test_unknown_fields_are_ignored(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_message({"t": "input", "seq": 1, "d": {"a": 1}, "future": [1, 2]})
        await alice.send_message({"t": "ping", "id": 3, "extra": {"x": 1}})
        assert (await alice.wait_for("pong"))["id"] == 3
        await state_until(alice, acked(alice, 1))
        assert alice.mirror.players[alice.pid] == {"a": 1}
