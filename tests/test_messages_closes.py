"""Messages that close the connection (contract section 2, bad messages; codes of section 8):
undecodable or malformed frames close `4000`, oversized ones `1009`; the seat ends with
`error`."""

from __future__ import annotations

import contextlib
import json

import msgpack
import pytest

from tests.helpers import acked, answers, nested, pack, state_until
from tickrelay.client import ClientClosed, connect

# Close 4000 -------------------------------------------------------------------------------

INPUT = {"t": "input", "seq": 1, "d": {"x": 1}}

CLOSE_4000 = [
    pytest.param("msgpack", b"\xc1", id="never-used-msgpack-byte"),
    pytest.param("msgpack", pack(INPUT)[:-3], id="truncated-msgpack"),
    pytest.param("msgpack", b"", id="empty-binary-frame"),
    pytest.param("msgpack", b"\x81\xa1t\xa2\xff\xfe", id="invalid-utf8-string"),
    pytest.param("msgpack", pack(["t", "input"]), id="msgpack-list"),
    pytest.param("msgpack", pack("ping"), id="msgpack-string"),
    pytest.param("json", '"ping"', id="json-string"),
    pytest.param("json", '[{"t":"ping","id":1}]', id="json-list"),
    pytest.param("msgpack", pack({"seq": 1, "d": {}}), id="msgpack-no-t"),
    pytest.param("json", '{"id":1}', id="json-no-t"),
    pytest.param("msgpack", pack({"t": 1, "id": 1}), id="msgpack-int-t"),
    pytest.param("msgpack", pack({"t": b"ping", "id": 1}), id="msgpack-bin-t"),
    pytest.param("json", '{"t":null,"id":1}', id="json-null-t"),
    pytest.param("json", '{"t":["ping"],"id":1}', id="json-list-t"),
    pytest.param("msgpack", pack({"t": "event", "d": msgpack.ExtType(5, b"x")}), id="ext-type"),
    pytest.param("msgpack", pack({"t": "event", "d": msgpack.Timestamp(1, 0)}), id="timestamp"),
    pytest.param("msgpack", pack({"t": "input", "seq": 1, "d": {"a": {1: 2}}}), id="int-key-in-d"),
    pytest.param("msgpack", pack({"t": "input", "seq": 1, "d": {b"k": 2}}), id="bin-key-in-d"),
    pytest.param("msgpack", pack({"t": "ping", "id": 1, 7: "x"}), id="int-key-at-top"),
    pytest.param("msgpack", pack({"t": "ping", "id": 1}) + b"\x00", id="trailing-bytes"),
    pytest.param("msgpack", pack({"t": "ping", "id": 1}) * 2, id="two-messages-in-a-frame"),
    pytest.param("json", '{"t":"ping","id":1}{}', id="json-trailing-data"),
    pytest.param("msgpack", '{"t":"ping","id":1}', id="text-frame-on-msgpack"),
    pytest.param("json", pack({"t": "ping", "id": 1}), id="binary-frame-on-json"),
    pytest.param("json", b'{"t":"ping","id":1}', id="json-bytes-in-binary-frame"),
    pytest.param("json", '{"t":"ping",', id="invalid-json"),
    pytest.param("json", "{'t': 'ping'}", id="single-quoted-json"),
    pytest.param("json", '{"t":"event","d":NaN}', id="json-nan"),
    pytest.param("json", '{"t":"event","d":Infinity}', id="json-infinity"),
    pytest.param("json", '{"t":"event","d":[-Infinity]}', id="json-minus-infinity"),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": nested(100)}), id="msgpack-too-deep"
    ),
    pytest.param(
        "json", json.dumps({"t": "input", "seq": 1, "d": nested(100)}), id="json-too-deep"
    ),
    pytest.param(
        "json", '{"t":"event","d":' + "[" * 5000 + "]" * 5000 + "}", id="json-very-deep-lists"
    ),
    pytest.param("msgpack", b"\x81\xa1d" + b"\x91" * 5000 + b"\xc0", id="msgpack-very-deep"),
]


@pytest.mark.parametrize(("codec", "frame"), CLOSE_4000)
async def test_malformed_frame_closes_4000_and_ends_the_seat_with_error(
    server, room_id, codec, frame
):
    async with (
        await connect(server.ws, room_id) as watcher,
        await connect(server.ws, room_id, codec=codec) as bad,
    ):
        await state_until(watcher, lambda mirror: bad.pid in mirror.players)
        await bad.send_raw(frame)
        assert await bad.wait_closed() == 4000
        assert bad.close_reason
        assert await watcher.wait_for("leave") == {"t": "leave", "pid": bad.pid, "reason": "error"}
        await state_until(watcher, lambda mirror: bad.pid not in mirror.players)


async def test_spectator_closed_4000_causes_no_leave(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as carol,
    ):
        await carol.send_raw(b"\xc1")
        assert await carol.wait_closed() == 4000
        assert [msg for msg in await answers(alice) if msg["t"] == "leave"] == []


# Close 1009 -------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_message_over_64_kib_closes_1009_and_ends_the_seat(server, room_id, codec):
    async with (
        await connect(server.ws, room_id) as watcher,
        await connect(server.ws, room_id, codec=codec) as big,
    ):
        await state_until(watcher, lambda mirror: big.pid in mirror.players)
        await big.send_input({"blob": "x" * (64 * 1024 + 10)})
        assert await big.wait_closed() == 1009
        assert await watcher.wait_for("leave") == {"t": "leave", "pid": big.pid, "reason": "error"}
        await state_until(watcher, lambda mirror: big.pid not in mirror.players)


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_configured_message_size_bound_closes_1009(servers, room_id, codec):
    small = servers.get(max_message_size=1024)
    async with (
        await connect(small.ws, room_id) as watcher,
        await connect(small.ws, room_id, codec=codec) as big,
    ):
        await state_until(watcher, lambda mirror: big.pid in mirror.players)
        await big.send_event("x" * 2048)
        assert await big.wait_closed() == 1009
        assert await watcher.wait_for("leave") == {"t": "leave", "pid": big.pid, "reason": "error"}


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_oversized_message_followed_by_more_frames_still_closes_1009(server, room_id, codec):
    """The client reads the 1009 even when it keeps sending after the oversized frame."""
    async with await connect(server.ws, room_id, codec=codec) as big:
        blob = "x" * (256 * 1024)
        await big.send_raw(
            pack({"t": "event", "d": blob})
            if codec == "msgpack"
            else json.dumps({"t": "event", "d": blob})
        )
        with contextlib.suppress(ClientClosed):
            for n in range(20):
                await big.send_message({"t": "ping", "id": n})
        assert await big.wait_closed() == 1009


async def test_message_under_the_configured_size_bound_is_accepted(servers, room_id):
    small = servers.get(max_message_size=1024)
    async with await connect(small.ws, room_id) as alice:
        seq = await alice.send_input({"blob": "x" * 900})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"blob": "x" * 900}
