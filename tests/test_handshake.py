"""Connecting (contract section 1): subprotocols, origin, room ids, query values, refusals."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import assert_closed_with, create_room, refusal
from tickrelay.client import connect
from tickrelay.protocol import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, codec_for

GOOD_ORIGIN = "http://good.example"


async def handshake_status(url: str, **kwargs) -> int:
    """The HTTP status of a handshake the server must refuse (no WebSocket)."""
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(url, open_timeout=5, **kwargs):
            pass
    return info.value.response.status_code


async def room_status(server, room_id: str) -> int:
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        return (await http.get(f"/rooms/{room_id}")).status_code


@pytest.fixture
def origin_server(servers):
    return servers.get(allowed_origins=[GOOD_ORIGIN])


@pytest.fixture
def bounded_server(servers):
    return servers.get(max_connections=2)


# Subprotocols -----------------------------------------------------------------------------


async def test_msgpack_subprotocol_is_chosen_and_sends_binary_frames(server, room_id):
    url = f"{server.ws}/ws/rooms/{room_id}"
    async with ws_connect(url, subprotocols=[MSGPACK_SUBPROTOCOL], open_timeout=5) as ws:
        assert ws.subprotocol == MSGPACK_SUBPROTOCOL
        frame = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(frame, bytes)
        assert codec_for(MSGPACK_SUBPROTOCOL).decode(frame)["t"] == "welcome"


async def test_json_subprotocol_is_chosen_and_sends_text_frames(server, room_id):
    url = f"{server.ws}/ws/rooms/{room_id}"
    async with ws_connect(url, subprotocols=[JSON_SUBPROTOCOL], open_timeout=5) as ws:
        assert ws.subprotocol == JSON_SUBPROTOCOL
        frames = [await asyncio.wait_for(ws.recv(), 5)]
        while json.loads(frames[-1])["t"] != "snap":  # welcome, host, then snap
            frames.append(await asyncio.wait_for(ws.recv(), 5))
        assert all(isinstance(frame, str) for frame in frames)
        assert json.loads(frames[0])["t"] == "welcome"


async def test_no_subprotocol_offered_gets_msgpack_without_a_protocol_header(server, room_id):
    url = f"{server.ws}/ws/rooms/{room_id}"
    async with ws_connect(url, open_timeout=5) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Protocol") is None
        frame = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(frame, bytes)
        assert codec_for(MSGPACK_SUBPROTOCOL).decode(frame)["t"] == "welcome"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["x-unknown", JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL], JSON_SUBPROTOCOL),
        ([MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL], MSGPACK_SUBPROTOCOL),
        ([JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL], JSON_SUBPROTOCOL),
    ],
)
async def test_first_known_offered_subprotocol_wins(server, room_id, offered, chosen):
    async with await connect(server.ws, room_id, subprotocols=offered) as client:
        assert client.subprotocol == chosen
        assert client.welcome["t"] == "welcome"


async def test_only_unknown_subprotocols_are_refused_at_the_handshake(server, room_id):
    url = f"{server.ws}/ws/rooms/{room_id}"
    status = await handshake_status(url, subprotocols=["tickrelay.v2.msgpack", "chat"])
    assert 400 <= status < 500
    assert await room_status(server, room_id) == 404


# Origin allowlist -------------------------------------------------------------------------


async def test_allowed_origin_joins(origin_server, room_id):
    async with await connect(origin_server.ws, room_id, origin=GOOD_ORIGIN) as client:
        assert client.welcome["room"] == room_id


async def test_other_origin_is_refused_with_http_403(origin_server, room_id):
    refused = await refusal(origin_server.ws, room_id, origin="http://evil.example")
    assert refused.status == 403
    assert refused.code is None


async def test_missing_origin_is_refused_with_http_403(origin_server, room_id):
    refused = await refusal(origin_server.ws, room_id)
    assert refused.status == 403
    assert refused.code is None


async def test_origin_refusal_creates_no_room(origin_server, room_id):
    await refusal(origin_server.ws, room_id, origin="http://evil.example")
    assert await room_status(origin_server, room_id) == 404


# Room ids ---------------------------------------------------------------------------------


async def test_one_character_room_id_is_valid(server):
    async with await connect(server.ws, "Q") as client:
        assert client.welcome["room"] == "Q"


async def test_sixty_four_character_room_id_is_valid(server, room_id):
    long_id = (room_id + "x" * 64)[:64]
    async with await connect(server.ws, long_id) as client:
        assert client.welcome["room"] == long_id


async def test_sixty_five_character_room_id_is_closed_4000(server, room_id):
    assert_closed_with(await refusal(server.ws, (room_id + "x" * 65)[:65]), 4000)


@pytest.mark.parametrize("bad", ["has.dot", "has space", "caf\u00e9", "a+b", "~tilde"])
async def test_room_id_with_bad_characters_is_closed_4000(server, bad):
    assert_closed_with(await refusal(server.ws, bad), 4000)


async def test_percent_encoded_slash_in_room_id_is_closed_4000(server, room_id):
    # The client percent-encodes the id, so "a/b" goes out as one segment "a%2Fb".
    assert_closed_with(await refusal(server.ws, f"{room_id}/b"), 4000)


async def test_room_id_is_compared_after_percent_decoding(server, room_id):
    async with await connect(server.ws, f"{room_id}-1") as alice:
        url = f"{server.ws}/ws/rooms/{room_id}%2D1"
        async with ws_connect(url, open_timeout=5) as ws:
            welcome = codec_for(MSGPACK_SUBPROTOCOL).decode(await asyncio.wait_for(ws.recv(), 5))
            assert welcome["room"] == f"{room_id}-1"
            join = await alice.wait_for("join")
            assert join["pid"] == welcome["pid"]


async def test_literal_slash_in_room_id_is_http_404(server, room_id):
    assert await handshake_status(f"{server.ws}/ws/rooms/{room_id}/b") == 404


@pytest.mark.parametrize("path", ["/ws/rooms/", "/ws/rooms"])
async def test_path_without_room_id_is_http_404(server, path):
    assert await handshake_status(f"{server.ws}{path}") == 404


# Query values -----------------------------------------------------------------------------


async def test_spectate_1_joins_as_spectator(server, room_id):
    async with await connect(server.ws, room_id, spectate=True) as client:
        assert client.welcome["spectator"] is True


async def test_spectate_true_joins_as_spectator(server, room_id):
    async with await connect(f"{server.ws}?spectate=true", room_id) as client:
        assert client.welcome["spectator"] is True


@pytest.mark.parametrize("value", ["2", "0", "", "yes", "TRUE", "True"])
async def test_other_spectate_value_is_closed_4000(server, room_id, value):
    assert_closed_with(await refusal(f"{server.ws}?spectate={value}", room_id), 4000)


# Seats and room existence -----------------------------------------------------------------


async def test_join_beyond_max_players_is_closed_4009(server, room_id):
    await create_room(server, room_id, max_players=1)
    async with await connect(server.ws, room_id):
        assert_closed_with(await refusal(server.ws, room_id), 4009)


async def test_spectator_beyond_max_spectators_is_closed_4009(server, room_id):
    await create_room(server, room_id, max_spectators=1)
    async with await connect(server.ws, room_id, spectate=True):
        assert_closed_with(await refusal(server.ws, room_id, spectate=True), 4009)


async def test_spectator_joins_a_room_whose_seats_are_full(server, room_id):
    await create_room(server, room_id, max_players=1)
    async with (
        await connect(server.ws, room_id),
        await connect(server.ws, room_id, spectate=True) as spectator,
    ):
        assert spectator.welcome["spectator"] is True


async def test_unknown_room_is_closed_4004_when_rooms_are_not_created_on_join(servers, room_id):
    closed = servers.get(create_rooms_on_join=False)
    assert_closed_with(await refusal(closed.ws, room_id), 4004)
    assert await room_status(closed, room_id) == 404


async def test_room_created_by_the_api_is_joinable_when_rooms_are_not_created_on_join(
    servers, room_id
):
    closed = servers.get(create_rooms_on_join=False)
    await create_room(closed, room_id)
    async with await connect(closed.ws, room_id) as client:
        assert client.welcome["room"] == room_id


# Refusal order ----------------------------------------------------------------------------


async def test_bad_resume_token_for_an_unknown_room_is_4012_before_4004(servers, room_id):
    closed = servers.get(create_rooms_on_join=False)
    assert_closed_with(await refusal(closed.ws, room_id, resume="not-a-token"), 4012)


async def test_bad_room_id_is_4000_before_room_existence(servers):
    closed = servers.get(create_rooms_on_join=False)
    assert_closed_with(await refusal(closed.ws, "bad.id"), 4000)


async def test_bad_spectate_value_is_4000_before_room_existence(servers, room_id):
    closed = servers.get(create_rooms_on_join=False)
    assert_closed_with(await refusal(f"{closed.ws}?spectate=2", room_id), 4000)


async def test_bad_spectate_value_is_4000_before_the_seat_check(server, room_id):
    await create_room(server, room_id, max_players=1)
    async with await connect(server.ws, room_id):
        assert_closed_with(await refusal(f"{server.ws}?spectate=2", room_id), 4000)


async def test_bad_resume_token_is_4012_before_the_seat_check(server, room_id):
    await create_room(server, room_id, max_players=1)
    async with await connect(server.ws, room_id):
        assert_closed_with(await refusal(server.ws, room_id, resume="not-a-token"), 4012)


# Connection bound -------------------------------------------------------------------------


async def wait_until_idle(server) -> None:
    """Wait until connections of earlier tests on the shared server have been let go."""
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        async with asyncio.timeout(5):
            while (await http.get("/stats")).json()["connections"] != 0:
                await asyncio.sleep(0.05)


async def test_connection_beyond_the_bound_is_closed_1013(bounded_server, room_id):
    await wait_until_idle(bounded_server)
    async with await connect(bounded_server.ws, room_id), await connect(bounded_server.ws, room_id):
        assert_closed_with(await refusal(bounded_server.ws, room_id), 1013)


async def test_connection_bound_is_checked_before_the_room_id(bounded_server, room_id):
    await wait_until_idle(bounded_server)
    async with await connect(bounded_server.ws, room_id), await connect(bounded_server.ws, room_id):
        assert_closed_with(await refusal(bounded_server.ws, "bad.id"), 1013)


# How refusals arrive ----------------------------------------------------------------------


async def test_refusal_is_an_accepted_websocket_closed_with_code_and_reason(server):
    async with ws_connect(f"{server.ws}/ws/rooms/bad.id", open_timeout=5) as ws:
        assert ws.response.status_code == 101
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4000
    assert info.value.rcvd.reason
