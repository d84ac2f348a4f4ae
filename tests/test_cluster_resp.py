"""The bus's RESP2 subset without sockets: what it writes, and replies however cut."""

from __future__ import annotations

import pytest

from tickrelay.server.cluster.resp import (
    ProtocolViolation,
    RespError,
    RespReader,
    command,
    publish_commands,
)

PUSHED = b"*3\r\n$7\r\nmessage\r\n$6\r\ntr:w:a\r\n$5\r\nhe\r\nl\r\n"


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert command("SUBSCRIBE", "a", b"b\r\n") == (
        b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$3\r\nb\r\n\r\n"
    )


def test_publishes_of_a_flush_are_one_buffer_in_order() -> None:
    written = publish_commands([("c1", b"x"), ("c2", b"")])
    assert written == command("PUBLISH", "c1", b"x") + command("PUBLISH", "c2", b"")


def test_a_pushed_message_is_read_whole_when_cut_at_any_byte() -> None:
    for cut in range(1, len(PUSHED)):
        reader = RespReader()
        first = reader.feed(PUSHED[:cut])
        second = reader.feed(PUSHED[cut:])
        assert first + second == [[b"message", b"tr:w:a", b"he\r\nl"]], cut


def test_several_replies_in_one_read_come_out_in_order() -> None:
    replies = RespReader().feed(b":3\r\n+OK\r\n$-1\r\n*-1\r\n*2\r\n*1\r\n:1\r\n$0\r\n\r\n")
    assert replies == [3, b"OK", None, None, [[1], b""]]


def test_an_error_reply_is_a_value_not_an_exception() -> None:
    (reply,) = RespReader().feed(b"-NOAUTH Authentication required.\r\n")
    assert isinstance(reply, RespError)
    assert "NOAUTH" in str(reply)


@pytest.mark.parametrize("garbage", [b"?what\r\n", b":12x\r\n", b"\r\n"])
def test_bytes_that_are_not_resp_are_a_protocol_violation(garbage: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        RespReader().feed(garbage)


def test_a_bulk_string_over_the_bound_is_refused_before_it_is_buffered() -> None:
    with pytest.raises(ProtocolViolation):
        RespReader(max_bulk=10).feed(b"$11\r\n")


def test_a_bulk_string_must_end_in_crlf() -> None:
    with pytest.raises(ProtocolViolation):
        RespReader().feed(b"$3\r\nabcXY")


def test_arrays_nested_past_any_reply_of_redis_are_refused() -> None:
    with pytest.raises(ProtocolViolation):
        RespReader().feed(b"*1\r\n" * 50 + b":1\r\n")
