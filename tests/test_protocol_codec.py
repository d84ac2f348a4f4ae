"""Codecs, negotiation, close codes: section 2 and 8 of the contract, sans I/O."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickrelay.protocol import (
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    RECONNECTABLE,
    CloseCode,
    Codec,
    ErrorCode,
    JsonCodec,
    LeaveReason,
    Limits,
    MessageError,
    MsgpackCodec,
    ProtocolError,
    codec_for,
    negotiate,
)

MSGPACK = MsgpackCodec()
JSON = JsonCodec()
CODECS = [MSGPACK, JSON]
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    SCALARS.filter(lambda v: not (isinstance(v, float) and math.isinf(v))),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
MESSAGES = st.builds(
    lambda t, rest: {"t": t, **rest},
    st.text(max_size=8),
    st.dictionaries(st.text(max_size=6).filter(lambda k: k != "t"), JSON_VALUES, max_size=5),
)


def raw(codec: Codec, obj: Any) -> bytes | str:
    """Encode without the codec's own checks, to craft frames a bad client could send."""
    if codec.binary:
        return msgpack.packb(obj, use_bin_type=True)
    return json.dumps(obj)


def close_code(codec: Codec, frame: Any) -> CloseCode:
    with pytest.raises(ProtocolError) as caught:
        codec.decode(frame)
    return caught.value.code


def deep_frame(codec: Codec, depth: int) -> bytes | str:
    """A message of container depth ``depth`` (the message map counting 1), built by
    hand because encoders refuse the deepest ones."""
    lists = depth - 1
    if codec.binary:
        return b"\x82\xa1t\xa1x\xa1v" + b"\x91" * lists + b"\x01"
    return '{"t":"x","v":' + "[" * lists + "1" + "]" * lists + "}"


# --- close codes and errors --------------------------------------------------------------


def test_close_codes_have_contract_values() -> None:
    assert CloseCode.BAD_REQUEST == 4000
    assert CloseCode.TOO_LARGE == 1009
    assert CloseCode.SLOW_CONSUMER == 4011
    assert CloseCode.KICKED == 4013


def test_every_close_code_has_a_short_reason() -> None:
    for code in CloseCode:
        assert code.reason
        assert len(code.reason.encode()) <= 123


def test_close_code_reasons_are_human_texts() -> None:
    assert CloseCode.BAD_REQUEST.reason == "bad request"
    assert CloseCode.ROOM_FULL.reason == "room full"
    assert CloseCode.SLOW_CONSUMER.reason == "slow consumer"


def test_reconnectable_codes_match_contract() -> None:
    assert set(RECONNECTABLE) == {1006, 1011, 1012, 1013, 4011}
    assert CloseCode.SLOW_CONSUMER in RECONNECTABLE
    assert CloseCode.BAD_REQUEST not in RECONNECTABLE


def test_error_codes_and_leave_reasons_are_wire_strings() -> None:
    assert ErrorCode.BAD_MESSAGE == "bad_message"
    assert str(ErrorCode.UNKNOWN_TYPE) == "unknown_type"
    assert {str(r) for r in LeaveReason} == {"left", "timeout", "kicked", "closed", "error"}


def test_protocol_error_carries_code_and_reason() -> None:
    error = ProtocolError(CloseCode.BAD_REQUEST, "trailing bytes")
    assert (error.code, error.reason) == (CloseCode.BAD_REQUEST, "trailing bytes")


def test_message_error_carries_code_msg_and_ref() -> None:
    error = MessageError(ErrorCode.STALE, "old seq", 7)
    assert (error.code, error.msg, error.ref) == (ErrorCode.STALE, "old seq", 7)
    assert MessageError(ErrorCode.STALE, "old seq").ref is None


# --- negotiation -------------------------------------------------------------------------


def test_negotiate_picks_first_known_offer() -> None:
    assert negotiate(["x.v9", JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL]) == JSON_SUBPROTOCOL


def test_negotiate_defaults_to_msgpack_when_nothing_offered() -> None:
    assert negotiate([]) == MSGPACK_SUBPROTOCOL


def test_negotiate_refuses_only_unknown_offers() -> None:
    assert negotiate(["tickrelay.v2.msgpack", "chat"]) is None


def test_codec_for_builds_the_subprotocols_codec_with_limits() -> None:
    limits = Limits(max_message_size=10, max_depth=3)
    codec = codec_for(JSON_SUBPROTOCOL, limits)
    assert isinstance(codec, JsonCodec)
    assert codec.limits == limits
    assert isinstance(codec_for(MSGPACK_SUBPROTOCOL), MsgpackCodec)


def test_codec_for_rejects_unknown_subprotocol() -> None:
    with pytest.raises(ValueError):
        codec_for("tickrelay.v2.json")


def test_codecs_declare_subprotocol_and_frame_kind() -> None:
    assert (MSGPACK.subprotocol, MSGPACK.binary) == (MSGPACK_SUBPROTOCOL, True)
    assert (JSON.subprotocol, JSON.binary) == (JSON_SUBPROTOCOL, False)


def test_default_limits_match_contract() -> None:
    assert Limits() == Limits(max_message_size=65536, max_depth=32)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Limits(max_message_size=0)


# --- encoding ----------------------------------------------------------------------------


def test_msgpack_encode_returns_bytes_with_bin_type() -> None:
    frame = MSGPACK.encode({"t": "event", "d": b"\x00"})
    assert isinstance(frame, bytes)
    assert msgpack.unpackb(frame, raw=False) == {"t": "event", "d": b"\x00"}


def test_json_encode_returns_compact_unescaped_text() -> None:
    assert JSON.encode({"t": "event", "d": ["é", 1]}) == '{"t":"event","d":["é",1]}'


def test_json_encode_refuses_nan() -> None:
    with pytest.raises(ValueError):
        JSON.encode({"t": "pong", "ct": math.nan})


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
def test_encode_decode_round_trips_a_server_message(codec: Codec) -> None:
    d = {"players": {"a": None}}
    message = {"t": "delta", "tick": 5, "base": 4, "st": 1, "d": d, "acks": {}}
    assert codec.decode(codec.encode(message)) == message


# --- frame kind and size -----------------------------------------------------------------


def test_msgpack_rejects_text_frame() -> None:
    assert close_code(MSGPACK, '{"t":"ping","id":1}') == CloseCode.BAD_REQUEST


def test_json_rejects_binary_frame() -> None:
    assert close_code(JSON, b'{"t":"ping","id":1}') == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
def test_non_frame_objects_are_bad_requests(codec: Codec) -> None:
    assert close_code(codec, None) == CloseCode.BAD_REQUEST


def test_msgpack_accepts_bytearray_and_memoryview() -> None:
    frame = msgpack.packb({"t": "leave"})
    assert MSGPACK.decode(bytearray(frame)) == {"t": "leave"}
    assert MSGPACK.decode(memoryview(frame)) == {"t": "leave"}


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
def test_frame_over_max_message_size_closes_1009(codec: Codec) -> None:
    frame = raw(codec, {"t": "event", "d": "x" * 65536})
    assert close_code(codec, frame) == CloseCode.TOO_LARGE


@pytest.mark.parametrize("kind", [MsgpackCodec, JsonCodec])
def test_frame_of_exactly_max_message_size_is_accepted(kind: type[Codec]) -> None:
    frame = raw(kind(), {"t": "event", "d": "x" * 30})
    codec = kind(Limits(max_message_size=len(frame)))
    assert codec.decode(frame)["d"] == "x" * 30


def test_too_large_is_checked_before_decoding() -> None:
    assert close_code(MSGPACK, b"\xc1" * 70000) == CloseCode.TOO_LARGE
    assert close_code(JSON, "[" * 70000) == CloseCode.TOO_LARGE


def test_json_size_counts_utf8_bytes_not_characters() -> None:
    frame = json.dumps({"t": "event", "d": "é" * 40}, ensure_ascii=False)
    codec = JsonCodec(Limits(max_message_size=len(frame) + 10))
    assert close_code(codec, frame) == CloseCode.TOO_LARGE


# --- undecodable frames ------------------------------------------------------------------


@pytest.mark.parametrize("frame", [b"", b"\xc1", b"\x82\xa1t", b"\xdd\xff\xff\xff\xff"])
def test_undecodable_msgpack_closes_4000(frame: bytes) -> None:
    assert close_code(MSGPACK, frame) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("frame", ["", "{", '{"t":"x",}', "{'t':'x'}", "\ufeff{}"])
def test_invalid_json_closes_4000(frame: str) -> None:
    assert close_code(JSON, frame) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_close_4000(constant: str) -> None:
    assert close_code(JSON, f'{{"t":"input","seq":1,"d":{{"x":{constant}}}}}') == 4000


def test_msgpack_trailing_bytes_close_4000() -> None:
    assert close_code(MSGPACK, msgpack.packb({"t": "leave"}) + b"\xc0") == 4000


def test_json_trailing_data_closes_4000() -> None:
    assert close_code(JSON, '{"t":"leave"}{"t":"leave"}') == CloseCode.BAD_REQUEST


def test_json_surrounding_whitespace_is_allowed() -> None:
    assert JSON.decode(' {"t":"leave"}\n') == {"t": "leave"}


def test_msgpack_invalid_utf8_string_closes_4000() -> None:
    frame = b"\x81\xa1t\xa2\xff\xfe"
    assert close_code(MSGPACK, frame) == CloseCode.BAD_REQUEST


def test_msgpack_encoded_surrogate_closes_4000() -> None:
    frame = b"\x81\xa1t\xa3\xed\xa0\x80"
    assert close_code(MSGPACK, frame) == CloseCode.BAD_REQUEST


def test_json_lone_surrogate_escape_closes_4000() -> None:
    assert close_code(JSON, '{"t":"event","d":"\\ud800"}') == CloseCode.BAD_REQUEST


def test_json_lone_surrogate_escape_in_key_closes_4000() -> None:
    assert close_code(JSON, '{"t":"event","d":{"\\uDFFF":1}}') == CloseCode.BAD_REQUEST


def test_json_surrogate_pair_escape_is_accepted() -> None:
    assert JSON.decode('{"t":"event","d":"\\ud83d\\ude00"}')["d"] == "\U0001f600"


def test_json_raw_lone_surrogate_in_text_closes_4000() -> None:
    assert close_code(JSON, '{"t":"event","d":"\ud800"}') == CloseCode.BAD_REQUEST


# --- shape of the message ----------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
@pytest.mark.parametrize("obj", [[], [{"t": "leave"}], 1, "leave", None, True])
def test_not_a_map_closes_4000(codec: Codec, obj: Any) -> None:
    assert close_code(codec, raw(codec, obj)) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
@pytest.mark.parametrize("obj", [{}, {"seq": 1}, {"t": 1}, {"t": None}, {"t": ["input"]}])
def test_missing_or_non_string_t_closes_4000(codec: Codec, obj: dict[str, Any]) -> None:
    assert close_code(codec, raw(codec, obj)) == CloseCode.BAD_REQUEST


def test_msgpack_bin_t_closes_4000() -> None:
    assert close_code(MSGPACK, msgpack.packb({"t": b"leave"})) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize(
    "obj",
    [
        {"t": "x", 1: 2},
        {"t": "x", "d": {"a": {None: 1}}},
        {"t": "x", "d": [{"a": 1}, {2.5: 1}]},
        {"t": "x", "d": {b"bin": 1}},
        {"t": "x", "d": {True: 1}},
    ],
)
def test_non_string_key_anywhere_closes_4000(obj: dict[Any, Any]) -> None:
    assert close_code(MSGPACK, msgpack.packb(obj, use_bin_type=True)) == 4000


def test_msgpack_unhashable_key_closes_4000() -> None:
    frame = b"\x82\xa1t\xa1x\x91\x01\x02"  # {"t": "x", [1]: 2}
    assert close_code(MSGPACK, frame) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("path", ["top", "nested", "in_list"])
def test_msgpack_ext_type_closes_4000(path: str) -> None:
    ext = msgpack.ExtType(5, b"\x01\x02")
    obj = {
        "top": {"t": "x", "e": ext},
        "nested": {"t": "input", "seq": 1, "d": {"e": ext}},
        "in_list": {"t": "event", "d": [1, [ext]]},
    }[path]
    assert close_code(MSGPACK, msgpack.packb(obj)) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("path", ["field", "nested", "in_list"])
def test_msgpack_timestamp_closes_4000(path: str) -> None:
    stamp = msgpack.Timestamp(1_700_000_000, 5)
    obj = {
        "field": {"t": "x", "at": stamp},
        "nested": {"t": "input", "seq": 1, "d": {"at": stamp}},
        "in_list": {"t": "event", "d": [[stamp]]},
    }[path]
    assert close_code(MSGPACK, msgpack.packb(obj)) == CloseCode.BAD_REQUEST


def test_msgpack_top_level_timestamp_closes_4000() -> None:
    assert close_code(MSGPACK, msgpack.packb(msgpack.Timestamp(1, 0))) == 4000


def test_msgpack_ext_minus_one_of_invalid_length_closes_4000() -> None:
    frame = b"\x82\xa1t\xa1x\xa1e\xc7\x03\xff\x00\x00\x00"
    assert close_code(MSGPACK, frame) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
def test_nesting_at_max_depth_is_accepted(codec: Codec) -> None:
    assert codec.decode(deep_frame(codec, 32))["t"] == "x"


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
def test_nesting_deeper_than_max_depth_closes_4000(codec: Codec) -> None:
    assert close_code(codec, deep_frame(codec, 33)) == CloseCode.BAD_REQUEST


def test_max_depth_is_configurable() -> None:
    codec = JsonCodec(Limits(max_depth=2))
    assert codec.decode('{"t":"x","d":{}}') == {"t": "x", "d": {}}
    assert close_code(codec, '{"t":"x","d":{"a":[]}}') == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("codec", CODECS, ids=["msgpack", "json"])
def test_extremely_deep_nesting_closes_4000(codec: Codec) -> None:
    assert close_code(codec, deep_frame(codec, 30000)) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("kind", [MsgpackCodec, JsonCodec])
def test_deep_nesting_under_a_huge_max_depth_still_closes_4000(kind: type[Codec]) -> None:
    codec = kind(Limits(max_depth=1_000_000))
    assert close_code(codec, deep_frame(codec, 5000)) == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("kind", [MsgpackCodec, JsonCodec])
def test_nesting_near_the_stack_limit_never_escapes_as_recursion_error(kind: type[Codec]) -> None:
    codec = kind(Limits(max_depth=1_000_000))
    for depth in range(900, 1100, 7):
        try:
            codec.decode(deep_frame(codec, depth))
        except ProtocolError as error:
            assert error.code == CloseCode.BAD_REQUEST


def test_decode_lets_bin_nan_and_big_integers_through_for_parse() -> None:
    frame = msgpack.packb({"t": "event", "d": [b"\x00", math.nan, 2**64 - 1, -(2**63)]})
    d = MSGPACK.decode(frame)["d"]
    assert d[0] == b"\x00" and math.isnan(d[1]) and d[2:] == [2**64 - 1, -(2**63)]


def test_json_huge_integer_literal_decodes_outside_int64() -> None:
    value = JSON.decode('{"t":"event","d":' + "9" * 5000 + "}")["d"]
    assert value >= 2**63


def test_json_huge_negative_integer_literal_decodes_outside_int64() -> None:
    value = JSON.decode('{"t":"event","d":[-' + "9" * 5000 + "]}")["d"][0]
    assert value < -(2**63)


def test_json_int64_boundaries_decode_exactly_with_a_huge_literal_present() -> None:
    frame = '{"t":"x","a":-9223372036854775808,"b":9223372036854775807,"c":' + "1" * 4400 + "}"
    message = JSON.decode(frame)
    assert (message["a"], message["b"]) == (-(2**63), 2**63 - 1)


def test_json_overflowing_float_literal_decodes_to_infinity() -> None:
    assert JSON.decode('{"t":"x","d":1e400}')["d"] == math.inf


def test_unknown_fields_and_unknown_types_pass_the_codec() -> None:
    assert JSON.decode('{"t":"future","x":{"y":[1,2]}}') == {"t": "future", "x": {"y": [1, 2]}}


# --- properties --------------------------------------------------------------------------


def assert_decode_is_total(codec: Codec, frame: bytes | str) -> None:
    try:
        message = codec.decode(frame)
    except ProtocolError as error:
        assert error.code in (CloseCode.BAD_REQUEST, CloseCode.TOO_LARGE)
    else:
        assert type(message) is dict and type(message["t"]) is str


@PROPERTY
@given(frame=st.binary(max_size=200) | st.text(max_size=200))
def test_decode_of_arbitrary_input_raises_only_protocol_error(frame: bytes | str) -> None:
    for codec in CODECS:
        assert_decode_is_total(codec, frame)


@PROPERTY
@given(message=MESSAGES, data=st.data())
def test_decode_of_mutated_msgpack_raises_only_protocol_error(
    message: dict[str, Any], data: st.DataObject
) -> None:
    frame = bytearray(msgpack.packb(message))
    for _ in range(data.draw(st.integers(0, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    assert_decode_is_total(MSGPACK, bytes(frame[:cut]))


@PROPERTY
@given(message=MESSAGES, data=st.data())
def test_decode_of_mutated_json_raises_only_protocol_error(
    message: dict[str, Any], data: st.DataObject
) -> None:
    text = json.dumps(message)
    position = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.sampled_from(["", "[", "{", '"', "\\ud800", "NaN", "9" * 4400, ",", "}"]))
    cut = data.draw(st.integers(position, len(text)))
    assert_decode_is_total(JSON, text[:position] + insert + text[cut:])


@PROPERTY
@given(message=MESSAGES)
def test_valid_messages_round_trip_in_both_codecs(message: dict[str, Any]) -> None:
    for kind in (MsgpackCodec, JsonCodec):
        codec = kind(Limits(max_message_size=1 << 20, max_depth=1000))
        assert repr(codec.decode(codec.encode(message))) == repr(message)
