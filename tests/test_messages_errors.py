"""Refused requests that keep the connection (contract section 2, `error`): `bad_message`,
`unknown_type`, `stale`, `not_host`, `spectator`, and `too_large` against the state bounds
of section 3."""

from __future__ import annotations

import pytest

from tests.helpers import acked, answers, assert_error, errors_in, pack, record_acks, state_until
from tickrelay.client import connect

SMALL_STATE = {"max_player_state": 256, "max_room_state": 512}


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
