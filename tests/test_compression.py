"""permessage-deflate, when enabled: the same room, through websockets' general code paths.

With compression on, every connection has its own compression context, so frames cannot be
shared or written pre-framed: each message goes through the connection's writer task.
"""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.helpers import state_until
from tickrelay.client import connect


@pytest.fixture(scope="module")
def deflate_server(servers):
    return servers.get(permessage_deflate=True)


async def test_deflate_is_negotiated_when_enabled(deflate_server, room_id):
    url = f"{deflate_server.ws}/ws/rooms/{room_id}"
    async with ws_connect(url, subprotocols=["tickrelay.v1.msgpack"], compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]


async def test_deflate_is_not_negotiated_by_default(server, room_id):
    url = f"{server.ws}/ws/rooms/{room_id}"
    async with ws_connect(url, subprotocols=["tickrelay.v1.msgpack"], compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_a_compressed_room_relays_inputs_events_and_leaves(deflate_server, room_id):
    ws = deflate_server.ws
    async with (
        await connect(ws, room_id, compression="deflate") as alice,
        await connect(ws, room_id, compression="deflate", codec="json") as bob,
    ):
        await state_until(alice, lambda mirror: bob.pid in mirror.players)
        await bob.send_input({"x": 3})
        await state_until(alice, lambda mirror: mirror.players.get(bob.pid) == {"x": 3})
        await alice.send_event({"chat": "hi"})
        event = await bob.wait_for("event")
        assert event == {"t": "event", "from": alice.pid, "d": {"chat": "hi"}}
        assert await bob.leave() == 1000
        leave = await alice.wait_for("leave")
        assert leave == {"t": "leave", "pid": bob.pid, "reason": "left"}
