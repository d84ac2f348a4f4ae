"""Client message validation (section 2's client-to-server table) and server builders."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tickrelay.protocol.messages as m
from tickrelay.protocol import (
    ErrorCode,
    Event,
    Input,
    JsonCodec,
    Leave,
    LeaveReason,
    MessageError,
    MsgpackCodec,
    Ping,
    now_ms,
    parse_client_message,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Values a decoder can hand over, including those parse_client_message must refuse.
DECODED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)
FIELDS = st.sampled_from(["seq", "d", "room", "to", "id", "ct", "x"])


def refusal(msg: dict[str, Any]) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse_client_message(msg)
    return caught.value


def assert_bad_message(msg: dict[str, Any], ref: int | str) -> None:
    error = refusal(msg)
    assert (error.code, error.ref) == (ErrorCode.BAD_MESSAGE, ref)


UNSAFE_VALUES = [
    math.nan,
    math.inf,
    -math.inf,
    b"\x00",
    2**63,
    -(2**63) - 1,
    2**64,
    [1, [math.nan]],
    {"a": {"b": b"x"}},
]


# --- input -------------------------------------------------------------------------------


def test_input_is_parsed_with_seq_and_d() -> None:
    assert parse_client_message({"t": "input", "seq": 1, "d": {"x": 1}}) == Input(1, {"x": 1}, None)


def test_input_with_room_patch_keeps_it() -> None:
    msg = {"t": "input", "seq": 2, "d": {}, "room": {"score": None}}
    assert parse_client_message(msg) == Input(2, {}, {"score": None})


def test_input_with_null_room_has_no_room_patch() -> None:
    assert parse_client_message({"t": "input", "seq": 2, "d": {}, "room": None}).room is None


def test_input_keeps_the_decoded_objects_without_copying() -> None:
    d = {"x": [1, 2]}
    assert parse_client_message({"t": "input", "seq": 1, "d": d}).d is d


def test_input_ignores_unknown_fields() -> None:
    assert parse_client_message({"t": "input", "seq": 1, "d": {}, "future": b"?"}) == Input(1, {})


def test_input_seq_may_be_the_largest_int64() -> None:
    assert parse_client_message({"t": "input", "seq": INT64_MAX, "d": {}}).seq == INT64_MAX


@pytest.mark.parametrize("seq", [2.0, 1.5, True, False, 0, -1, "1", None, 2**63, [1]])
def test_input_seq_not_a_positive_int64_is_bad_message(seq: Any) -> None:
    assert_bad_message({"t": "input", "seq": seq, "d": {}}, "input")


def test_input_without_seq_is_bad_message() -> None:
    assert_bad_message({"t": "input", "d": {}}, "input")


@pytest.mark.parametrize("d", [None, [], [1], "x", 1, b"\x00"])
def test_input_d_not_a_map_is_bad_message_with_seq_ref(d: Any) -> None:
    assert_bad_message({"t": "input", "seq": 7, "d": d}, 7)


def test_input_without_d_is_bad_message() -> None:
    assert_bad_message({"t": "input", "seq": 7}, 7)


@pytest.mark.parametrize("room", [[], "x", 0, False, b"\x00"])
def test_input_room_not_a_map_is_bad_message(room: Any) -> None:
    assert_bad_message({"t": "input", "seq": 3, "d": {}, "room": room}, 3)


@pytest.mark.parametrize("value", UNSAFE_VALUES)
def test_input_d_with_a_value_json_cannot_carry_is_bad_message(value: Any) -> None:
    assert_bad_message({"t": "input", "seq": 4, "d": {"deep": {"v": value}}}, 4)


@pytest.mark.parametrize("value", UNSAFE_VALUES)
def test_input_room_with_a_value_json_cannot_carry_is_bad_message(value: Any) -> None:
    assert_bad_message({"t": "input", "seq": 4, "d": {}, "room": {"v": [value]}}, 4)


def test_input_d_with_int64_extremes_and_finite_floats_is_accepted() -> None:
    d = {"a": [INT64_MIN, INT64_MAX, 1e308, -0.0, True, None, "é"], "b": {}}
    assert parse_client_message({"t": "input", "seq": 1, "d": d}).d == d


def test_input_d_with_a_non_string_key_is_bad_message() -> None:
    assert_bad_message({"t": "input", "seq": 1, "d": {"a": {1: 2}}}, 1)


# --- the same rules, end to end through the codecs ---------------------------------------


def test_msgpack_nan_in_input_d_is_bad_message() -> None:
    msg = MsgpackCodec().decode(msgpack.packb({"t": "input", "seq": 1, "d": {"x": math.nan}}))
    assert_bad_message(msg, 1)


def test_msgpack_bin_value_in_input_d_is_bad_message() -> None:
    frame = msgpack.packb({"t": "input", "seq": 1, "d": {"x": b"\x01"}}, use_bin_type=True)
    assert_bad_message(MsgpackCodec().decode(frame), 1)


def test_msgpack_uint64_beyond_int64_in_input_d_is_bad_message() -> None:
    frame = msgpack.packb({"t": "input", "seq": 1, "d": {"x": 2**64 - 1}})
    assert_bad_message(MsgpackCodec().decode(frame), 1)


def test_msgpack_seq_as_float_is_bad_message() -> None:
    frame = msgpack.packb({"t": "input", "seq": 2.0, "d": {}})
    assert_bad_message(MsgpackCodec().decode(frame), "input")


def test_json_seq_written_as_float_is_bad_message() -> None:
    assert_bad_message(JsonCodec().decode('{"t":"input","seq":2.0,"d":{}}'), "input")


def test_json_huge_integer_literal_in_input_d_is_bad_message() -> None:
    msg = JsonCodec().decode('{"t":"input","seq":5,"d":{"x":' + "9" * 5000 + "}}")
    assert_bad_message(msg, 5)


def test_json_overflowing_float_in_event_d_is_bad_message() -> None:
    assert_bad_message(JsonCodec().decode('{"t":"event","d":[1e999]}'), "event")


# --- event -------------------------------------------------------------------------------


def test_event_is_parsed_with_any_json_value() -> None:
    assert parse_client_message({"t": "event", "d": [1, "a", {"b": None}]}) == Event(
        [1, "a", {"b": None}], None
    )


def test_event_without_d_carries_none() -> None:
    assert parse_client_message({"t": "event"}) == Event(None, None)


def test_event_with_to_keeps_the_pid_list() -> None:
    assert parse_client_message({"t": "event", "d": 1, "to": ["p1", "p2"]}).to == ["p1", "p2"]


def test_event_with_empty_to_is_accepted() -> None:
    assert parse_client_message({"t": "event", "d": 1, "to": []}).to == []


@pytest.mark.parametrize("to", ["p1", [1], ["p1", None], {"p1": True}, [b"p1"], True])
def test_event_to_not_a_list_of_pids_is_bad_message(to: Any) -> None:
    assert_bad_message({"t": "event", "d": 1, "to": to}, "event")


@pytest.mark.parametrize("value", UNSAFE_VALUES)
def test_event_d_with_a_value_json_cannot_carry_is_bad_message(value: Any) -> None:
    assert_bad_message({"t": "event", "d": value}, "event")


# --- ping and leave ----------------------------------------------------------------------


def test_ping_is_parsed_with_id_and_optional_ct() -> None:
    assert parse_client_message({"t": "ping", "id": 3}) == Ping(3, None)
    assert parse_client_message({"t": "ping", "id": -3, "ct": 12.5}) == Ping(-3, 12.5)
    assert parse_client_message({"t": "ping", "id": 0, "ct": 1700000000000}).ct == 1700000000000


@pytest.mark.parametrize("ping_id", [None, True, 1.0, "1", 2**63, INT64_MIN - 1, [1]])
def test_ping_id_not_an_int64_is_bad_message(ping_id: Any) -> None:
    assert_bad_message({"t": "ping", "id": ping_id}, "ping")


@pytest.mark.parametrize("ct", [math.nan, math.inf, "1", True, [1], 2**64, b"1"])
def test_ping_ct_not_a_finite_number_is_bad_message(ct: Any) -> None:
    assert_bad_message({"t": "ping", "id": 1, "ct": ct}, "ping")


def test_leave_is_parsed_ignoring_other_fields() -> None:
    assert parse_client_message({"t": "leave", "reason": "bored"}) == Leave()


# --- unknown types -----------------------------------------------------------------------


@pytest.mark.parametrize("t", ["jump", "welcome", "snap", "", "INPUT"])
def test_unknown_type_is_unknown_type_with_t_as_ref(t: str) -> None:
    error = refusal({"t": t, "seq": 1, "d": {}})
    assert (error.code, error.ref) == (ErrorCode.UNKNOWN_TYPE, t)


def test_message_without_string_t_is_bad_message() -> None:
    assert refusal({"t": ["input"]}).code == ErrorCode.BAD_MESSAGE


# --- dataclasses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "field"), [(Input(1, {}), "seq"), (Event(1), "d"), (Ping(1), "ct")]
)
def test_client_messages_are_frozen(message: Any, field: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(message, field, 2)


@pytest.mark.parametrize("kind", [Input, Event, Ping, Leave])
def test_client_messages_are_slotted_frozen_dataclasses(kind: type) -> None:
    assert "__slots__" in vars(kind)
    assert kind.__dataclass_params__.frozen


@PROPERTY
@given(
    t=st.sampled_from(["input", "event", "ping", "leave", "other"]),
    fields=st.dictionaries(FIELDS, DECODED, max_size=5),
)
def test_parse_raises_only_message_error(t: str, fields: dict[str, Any]) -> None:
    try:
        parsed = parse_client_message({"t": t, **fields})
    except MessageError as error:
        assert error.code in (ErrorCode.BAD_MESSAGE, ErrorCode.UNKNOWN_TYPE)
    else:
        assert isinstance(parsed, Input | Event | Ping | Leave)


@PROPERTY
@given(d=st.dictionaries(st.text(max_size=3), DECODED, max_size=4))
def test_accepted_input_encodes_in_both_codecs(d: dict[str, Any]) -> None:
    try:
        parsed = parse_client_message({"t": "input", "seq": 1, "d": d})
    except MessageError:
        return
    message = {"t": "input", "seq": parsed.seq, "d": parsed.d}
    assert MsgpackCodec().decode(MsgpackCodec().encode(message)) == message
    assert JsonCodec().decode(JsonCodec().encode(message)) == message


# --- server builders ---------------------------------------------------------------------


def test_welcome_has_every_contract_field() -> None:
    assert m.welcome("p1", "lobby", 10, 20, None, "tok", False, True, 99) == {
        "t": "welcome",
        "pid": "p1",
        "room": "lobby",
        "tick": 10,
        "rate": 20,
        "host": None,
        "resume": "tok",
        "spectator": False,
        "resumed": True,
        "st": 99,
    }


def test_snap_and_delta_have_contract_fields() -> None:
    s = {"players": {"p1": {}}, "room": {}}
    assert m.snap(5, 1, s, {"p1": 0}) == {
        "t": "snap",
        "tick": 5,
        "st": 1,
        "s": s,
        "acks": {"p1": 0},
    }
    assert m.delta(6, 5, 2, {"room": {"a": 1}}, {}) == {
        "t": "delta",
        "tick": 6,
        "base": 5,
        "st": 2,
        "d": {"room": {"a": 1}},
        "acks": {},
    }


def test_event_builder_uses_from_and_keeps_null_sender() -> None:
    assert m.event("p1", {"x": 1}) == {"t": "event", "from": "p1", "d": {"x": 1}}
    assert m.event(None, 1) == {"t": "event", "from": None, "d": 1}


def test_presence_builders_carry_the_pid() -> None:
    assert m.join("p1") == {"t": "join", "pid": "p1"}
    assert m.away("p1") == {"t": "away", "pid": "p1"}
    assert m.back("p1") == {"t": "back", "pid": "p1"}
    assert m.host(None) == {"t": "host", "pid": None}


def test_leave_builder_sends_the_reason_as_a_plain_string() -> None:
    message = m.leave("p1", LeaveReason.TIMEOUT)
    assert message == {"t": "leave", "pid": "p1", "reason": "timeout"}
    assert type(message["reason"]) is str


def test_pong_echoes_ct_only_when_given() -> None:
    assert m.pong(1, 50) == {"t": "pong", "id": 1, "st": 50}
    assert m.pong(1, 50, 0) == {"t": "pong", "id": 1, "st": 50, "ct": 0}


def test_error_builder_omits_missing_ref() -> None:
    assert m.error(ErrorCode.STALE, "old") == {"t": "error", "code": "stale", "msg": "old"}
    assert m.error(ErrorCode.STALE, "old", 3)["ref"] == 3
    assert type(m.error(ErrorCode.STALE, "old")["code"]) is str


def test_error_builder_takes_a_message_errors_fields() -> None:
    error = refusal({"t": "nope"})
    assert m.error(error.code, error.msg, error.ref)["ref"] == "nope"


def test_now_ms_is_the_wall_clock_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    assert before <= now_ms() <= time.time_ns() // 1_000_000
