"""Client messages and room state on real servers (contract sections 2 and 3)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import msgpack
import pytest

from tests.conftest import state_until
from tickrelay.client import ClientClosed, RoomClient, connect
from tickrelay.protocol import apply_patch

SMALL_STATE = {"max_player_state": 256, "max_room_state": 512}


def pack(message: Any) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def nested(depth: int) -> dict[str, Any]:
    """A map ``depth`` levels deep: {"n": {"n": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def acked(client: RoomClient, seq: int, pid: str | None = None):
    """Predicate for ``state_until``: the mirror holds ``pid``'s ack ``seq``."""
    pid = pid or client.pid
    return lambda mirror: mirror.acks.get(pid) == seq


async def answers(client: RoomClient) -> list[dict[str, Any]]:
    """Everything queued up to the answer of a ping sent now (reliable messages are ordered,
    so every error caused by an earlier message is among them); the pong itself excluded."""
    await client.ping()
    return [msg for msg in client.drain() if msg["t"] != "pong"]


def errors_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [msg for msg in messages if msg["t"] == "error"]


def assert_error(error: dict[str, Any], code: str, ref: Any) -> None:
    assert error["t"] == "error"
    assert error["code"] == code
    assert isinstance(error["msg"], str)
    assert error["msg"]
    assert error["ref"] == ref
    assert type(error["ref"]) is type(ref)


# Input ------------------------------------------------------------------------------------


async def test_input_merges_nested_maps_into_the_senders_state(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_input({"pos": {"x": 1, "y": 2}, "hp": 10})
        seq = await alice.send_input({"pos": {"y": 5, "z": {"w": 1}}})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"pos": {"x": 1, "y": 5, "z": {"w": 1}}, "hp": 10}


async def test_input_null_deletes_a_key(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_input({"a": 1, "b": {"c": 2, "d": 3}})
        seq = await alice.send_input({"a": None, "b": {"c": None}, "missing": None})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"b": {"d": 3}}


async def test_input_replaces_arrays_whole(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_input({"items": [1, 2, 3], "grid": [[0, 0], [0, 0]]})
        seq = await alice.send_input({"items": [9], "grid": [[1]]})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"items": [9], "grid": [[1]]}


async def test_every_input_is_applied_in_arrival_order(server, room_id):
    """However the inputs fall into ticks, the state at ack n is exactly inputs 1..n applied."""
    patches = [{"x": n, f"k{n}": n, "last": None if n % 2 else n} for n in range(1, 31)]
    expected = [{}]
    for patch in patches:
        expected.append(apply_patch(expected[-1], patch))
    async with await connect(server.ws, room_id) as alice:
        seen: list[tuple[int, Any]] = []
        alice.on_message = lambda msg: (
            msg["t"] in ("snap", "delta")
            and seen.append((alice.mirror.acks[alice.pid], alice.mirror.players[alice.pid]))
        )
        for patch in patches:
            await alice.send_input(patch)
        await state_until(alice, acked(alice, len(patches)))
        assert alice.mirror.players[alice.pid] == expected[-1]
        assert all(state == expected[ack] for ack, state in seen)


async def test_ack_is_the_seq_of_the_last_applied_input_even_with_gaps(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        acks: set[int] = set()
        alice.on_message = lambda msg: acks.add(alice.mirror.acks.get(alice.pid, 0))
        await alice.send_message({"t": "input", "seq": 3, "d": {"a": 1}})
        await alice.send_message({"t": "input", "seq": 10, "d": {"a": 2}})
        await state_until(alice, acked(alice, 10))
        assert acks <= {0, 3, 10}
        assert alice.mirror.players[alice.pid] == {"a": 2}


async def test_json_and_msgpack_players_see_the_same_inputs(server, room_id):
    async with (
        await connect(server.ws, room_id, codec="json") as alice,
        await connect(server.ws, room_id) as bob,
    ):
        seq = await alice.send_input({"name": "ünï", "v": [1.5, -2, True, None, {"k": "v"}]})
        await state_until(bob, acked(bob, seq, alice.pid))
        assert bob.mirror.players[alice.pid] == {
            "name": "ünï",
            "v": [1.5, -2, True, None, {"k": "v"}],
        }
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players == bob.mirror.players


async def test_moderately_nested_input_is_accepted(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        seq = await alice.send_input({"deep": nested(8)})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"deep": nested(8)}


# Event ------------------------------------------------------------------------------------


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


# Ping and leave ---------------------------------------------------------------------------


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


# Errors that keep the connection ----------------------------------------------------------

JSON_BIG_INT = '{"t":"input","seq":1,"d":{"n":9223372036854775808}}'
JSON_HUGE_INT = '{"t":"input","seq":1,"d":{"n":' + "9" * 40 + "}}"

BAD_INPUTS = [
    pytest.param("msgpack", pack({"t": "input", "seq": 0, "d": {"bad": 1}}), "input", id="seq-0"),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": -1, "d": {"bad": 1}}), "input", id="seq-minus-1"
    ),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 2.0, "d": {"bad": 1}}), "input", id="seq-2.0"
    ),
    pytest.param("json", '{"t":"input","seq":2.0,"d":{"bad":1}}', "input", id="json-seq-2.0"),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": "1", "d": {"bad": 1}}), "input", id="seq-string"
    ),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": True, "d": {"bad": 1}}), "input", id="seq-true"
    ),
    pytest.param("json", '{"t":"input","seq":true,"d":{"bad":1}}', "input", id="json-seq-true"),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": None, "d": {"bad": 1}}), "input", id="seq-null"
    ),
    pytest.param("msgpack", pack({"t": "input", "d": {"bad": 1}}), "input", id="missing-seq"),
    pytest.param(
        "msgpack",
        pack({"t": "input", "seq": 2**63, "d": {"bad": 1}}),
        "input",
        id="seq-above-int64",
    ),
    pytest.param("msgpack", pack({"t": "input", "seq": 1}), 1, id="missing-d"),
    pytest.param("msgpack", pack({"t": "input", "seq": 1, "d": [1]}), 1, id="d-list"),
    pytest.param("msgpack", pack({"t": "input", "seq": 1, "d": None}), 1, id="d-null"),
    pytest.param("json", '{"t":"input","seq":1,"d":"x"}', 1, id="json-d-string"),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": {"bad": 1}, "room": [1]}), 1, id="room-list"
    ),
    pytest.param("json", '{"t":"input","seq":1,"d":{"bad":1},"room":5}', 1, id="json-room-int"),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": {"bad": b"\x00\x01"}}), 1, id="bin-in-d"
    ),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": {"bad": [{"x": b""}]}}), 1, id="bin-deep-in-d"
    ),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": {"bad": float("nan")}}), 1, id="nan-in-d"
    ),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": {"bad": [float("-inf")]}}), 1, id="inf-in-d"
    ),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": {"bad": 2**63}}), 1, id="int-above-int64-in-d"
    ),
    pytest.param(
        "msgpack", pack({"t": "input", "seq": 1, "d": {"bad": 2**64 - 1}}), 1, id="uint64-max-in-d"
    ),
    pytest.param("json", JSON_BIG_INT, 1, id="json-int-above-int64-in-d"),
    pytest.param("json", JSON_HUGE_INT, 1, id="json-40-digit-int-in-d"),
    pytest.param("json", '{"t":"input","seq":1,"d":{"bad":1e999}}', 1, id="json-overflow-float"),
    pytest.param(
        "msgpack",
        pack({"t": "input", "seq": 1, "d": {"bad": 1}, "room": {"r": float("nan")}}),
        1,
        id="nan-in-room",
    ),
]


@pytest.mark.parametrize(("codec", "frame", "ref"), BAD_INPUTS)
async def test_malformed_input_is_bad_message_and_applies_nothing(
    server, room_id, codec, frame, ref
):
    async with await connect(server.ws, room_id, codec=codec) as alice:
        await alice.send_raw(frame)
        [error] = errors_in(await answers(alice))
        assert_error(error, "bad_message", ref)
        # The connection stays, and seq 1 is still free: nothing of the refused input counted.
        await alice.send_message({"t": "input", "seq": 1, "d": {"good": 1}})
        await state_until(alice, acked(alice, 1))
        assert alice.mirror.players[alice.pid] == {"good": 1}
        assert alice.mirror.room == {}


BAD_OTHERS = [
    pytest.param("msgpack", pack({"t": "event", "d": b"raw"}), "event", id="event-bin-d"),
    pytest.param(
        "msgpack", pack({"t": "event", "d": {"x": float("nan")}}), "event", id="event-nan-d"
    ),
    pytest.param("msgpack", pack({"t": "event", "d": [2**64 - 1]}), "event", id="event-uint64-d"),
    pytest.param(
        "json", '{"t":"event","d":-99999999999999999999}', "event", id="json-event-int-below-int64"
    ),
    pytest.param(
        "msgpack", pack({"t": "event", "d": 1, "to": "bob"}), "event", id="event-to-string"
    ),
    pytest.param(
        "msgpack", pack({"t": "event", "d": 1, "to": [1, 2]}), "event", id="event-to-ints"
    ),
    pytest.param("json", '{"t":"event","d":1,"to":{"pid":"x"}}', "event", id="json-event-to-map"),
    pytest.param("msgpack", pack({"t": "ping"}), "ping", id="ping-no-id"),
    pytest.param("msgpack", pack({"t": "ping", "id": "1"}), "ping", id="ping-string-id"),
    pytest.param("msgpack", pack({"t": "ping", "id": 1.0}), "ping", id="ping-float-id"),
    pytest.param("json", '{"t":"ping","id":1,"ct":"now"}', "ping", id="json-ping-string-ct"),
    pytest.param(
        "msgpack", pack({"t": "ping", "id": 1, "ct": float("inf")}), "ping", id="ping-infinite-ct"
    ),
]


@pytest.mark.parametrize(("codec", "frame", "ref"), BAD_OTHERS)
async def test_malformed_event_or_ping_is_bad_message(server, room_id, codec, frame, ref):
    async with (
        await connect(server.ws, room_id, codec=codec) as alice,
        await connect(server.ws, room_id) as bob,
    ):
        await alice.send_raw(frame)
        [error] = errors_in(await answers(alice))
        assert_error(error, "bad_message", ref)
        await alice.send_event("still here")
        assert (await bob.wait_for("event"))["d"] == "still here"


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_unknown_type_is_answered_with_its_t_as_ref(server, room_id, codec):
    async with await connect(server.ws, room_id, codec=codec) as alice:
        await alice.send_message({"t": "jump", "height": 3})
        await alice.send_message({"t": "", "x": 1})
        first, second = errors_in(await answers(alice))
        assert_error(first, "unknown_type", "jump")
        assert_error(second, "unknown_type", "")
        seq = await alice.send_input({"ok": True})
        await state_until(alice, acked(alice, seq))


async def test_input_with_a_seq_not_above_the_last_accepted_is_stale(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_message({"t": "input", "seq": 5, "d": {"v": 5}})
        await alice.send_message({"t": "input", "seq": 5, "d": {"v": "again"}})
        await alice.send_message({"t": "input", "seq": 3, "d": {"v": "older"}})
        stale_5, stale_3 = errors_in(await answers(alice))
        assert_error(stale_5, "stale", 5)
        assert_error(stale_3, "stale", 3)
        await state_until(alice, acked(alice, 5))
        assert alice.mirror.players[alice.pid] == {"v": 5}


async def test_a_stale_input_does_not_move_the_seq_bar(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_message({"t": "input", "seq": 5, "d": {"v": 5}})
        await alice.send_message({"t": "input", "seq": 4, "d": {"v": 4}})
        await alice.send_message({"t": "input", "seq": 6, "d": {"v": 6}})
        [stale] = errors_in(await answers(alice))
        assert_error(stale, "stale", 4)
        await state_until(alice, acked(alice, 6))
        assert alice.mirror.players[alice.pid] == {"v": 6}


async def test_room_patch_from_a_non_host_is_not_host_and_nothing_is_applied(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, codec="json") as bob,
    ):
        assert alice.host == alice.pid
        await bob.send_message({"t": "input", "seq": 1, "d": {"mine": 1}, "room": {"map": "x"}})
        [error] = errors_in(await answers(bob))
        assert_error(error, "not_host", 1)
        # seq 1 is still free: the refused input did not move the seq bar.
        await bob.send_message({"t": "input", "seq": 1, "d": {"other": 2}})
        await state_until(alice, acked(alice, 1, bob.pid))
        assert alice.mirror.players[bob.pid] == {"other": 2}
        assert alice.mirror.room == {}


async def test_input_from_a_spectator_is_refused_with_spectator(server, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as carol,
    ):
        await carol.send_message({"t": "input", "seq": 1, "d": {"x": 1}})
        [error] = errors_in(await answers(carol))
        assert_error(error, "spectator", 1)
        await alice.send_input({"x": 2})
        await state_until(carol, acked(carol, 1, alice.pid))
        assert list(carol.mirror.players) == [alice.pid]
        assert carol.mirror.players[alice.pid] == {"x": 2}


def record_acks(client: RoomClient) -> set[int]:
    """Every ack of the client's own pid that its mirror held after a state message."""
    seen: set[int] = set()

    def record(msg: dict[str, Any]) -> None:
        if msg["t"] in ("snap", "delta"):
            seen.add(client.mirror.acks.get(client.pid, 0))

    client.on_message = record
    return seen


async def test_input_making_the_player_state_too_large_is_refused(servers, room_id):
    small = servers.get(**SMALL_STATE)
    async with await connect(small.ws, room_id) as alice:
        acks = record_acks(alice)
        await alice.send_input({"small": 1})
        big = await alice.send_input({"blob": "x" * 300})
        assert_error(await alice.wait_for("error"), "too_large", big)
        after = await alice.send_input({"after": 3})
        await state_until(alice, acked(alice, after))
        assert alice.mirror.players[alice.pid] == {"small": 1, "after": 3}
        assert big not in acks


async def test_state_growing_past_the_bound_over_several_inputs_is_refused(servers, room_id):
    small = servers.get(**SMALL_STATE)
    async with await connect(small.ws, room_id) as alice:
        acks = record_acks(alice)
        for n in range(3):
            await alice.send_input({f"k{n}": "x" * 70})
        last = await alice.send_input({"k3": "x" * 70})
        assert_error(await alice.wait_for("error"), "too_large", last)
        after = await alice.send_input({"k0": None})
        await state_until(alice, acked(alice, after))
        assert set(alice.mirror.players[alice.pid]) == {"k1", "k2"}
        assert last not in acks


async def test_room_patch_making_the_room_state_too_large_is_refused_whole(servers, room_id):
    small = servers.get(**SMALL_STATE)
    async with await connect(small.ws, room_id) as alice:
        acks = record_acks(alice)
        await alice.send_input({"v": 1}, room={"map": "dust"})
        big = await alice.send_input({"v": 2, "extra": True}, room={"blob": "x" * 600})
        assert_error(await alice.wait_for("error"), "too_large", big)
        after = await alice.send_input({"after": 3})
        await state_until(alice, acked(alice, after))
        assert alice.mirror.players[alice.pid] == {"v": 1, "after": 3}
        assert alice.mirror.room == {"map": "dust"}
        assert big not in acks


async def test_a_seq_refused_as_too_large_may_be_sent_again(servers, room_id):
    small = servers.get(**SMALL_STATE)
    async with await connect(small.ws, room_id) as alice:
        await alice.send_message({"t": "input", "seq": 1, "d": {"blob": "x" * 300}})
        assert_error(await alice.wait_for("error"), "too_large", 1)
        await alice.send_message({"t": "input", "seq": 1, "d": {"small": 1}})
        await state_until(alice, acked(alice, 1))
        assert alice.mirror.players[alice.pid] == {"small": 1}
        assert errors_in(await answers(alice)) == []


async def test_a_refused_input_does_not_free_the_seq_of_a_later_accepted_one(servers, room_id):
    small = servers.get(**SMALL_STATE)
    async with await connect(small.ws, room_id) as alice:
        await alice.send_message({"t": "input", "seq": 1, "d": {"blob": "x" * 300}})
        await alice.send_message({"t": "input", "seq": 2, "d": {"small": 2}})
        assert_error(await alice.wait_for("error"), "too_large", 1)
        await state_until(alice, acked(alice, 2))
        await alice.send_message({"t": "input", "seq": 2, "d": {"small": "again"}})
        assert_error(await alice.wait_for("error"), "stale", 2)
        assert alice.mirror.players[alice.pid] == {"small": 2}


# Ticks and state (section 3) --------------------------------------------------------------


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
