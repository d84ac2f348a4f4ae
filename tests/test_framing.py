"""The fast frame reader, sans socket: whole masked frames out, everything else flagged."""

from __future__ import annotations

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tickrelay.server.framing import Kind, read_frame

MAX = 65536


def client_frame(
    opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, (0x80 if masked else 0) | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, size)
    else:
        header = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, size)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_whole_binary_frame_is_read_and_unmasked():
    data = client_frame(2, b"\x81\xa1t\xa4ping")
    assert read_frame(data, 0, MAX) == (Kind.BINARY, b"\x81\xa1t\xa4ping", len(data))


def test_a_text_frame_is_read_as_text_kind():
    data = client_frame(1, b'{"t":"ping"}')
    assert read_frame(data, 0, MAX)[:2] == (Kind.TEXT, b'{"t":"ping"}')


def test_frames_back_to_back_are_read_one_after_the_other():
    data = client_frame(2, b"one") + client_frame(2, b"two" * 100)
    kind, first, offset = read_frame(data, 0, MAX)
    kind2, second, end = read_frame(data, offset, MAX)
    assert (kind, kind2) == (Kind.BINARY, Kind.BINARY)
    assert (first, second, end) == (b"one", b"two" * 100, len(data))


def test_a_truncated_frame_is_partial_at_every_cut():
    data = client_frame(2, b"x" * 300)
    for cut in range(len(data)):
        assert read_frame(data[:cut], 0, MAX) == (Kind.PARTIAL, b"", 0)


def test_ping_and_pong_are_read_for_the_caller_to_answer():
    assert read_frame(client_frame(9, b"hb"), 0, MAX)[:2] == (Kind.PING, b"hb")
    assert read_frame(client_frame(10, b"hb"), 0, MAX)[:2] == (Kind.PONG, b"hb")


def test_close_fragments_reserved_bits_and_unmasked_frames_go_to_the_general_parser():
    for data in (
        client_frame(8, struct.pack("!H", 1000)),
        client_frame(2, b"part", fin=False),
        client_frame(0, b"cont"),
        client_frame(2, b"deflated", rsv=0x40),
        client_frame(2, b"plain", masked=False),
        client_frame(3, b"reserved opcode"),
    ):
        assert read_frame(data, 0, MAX) == (Kind.OTHER, b"", 0)


def test_a_frame_over_the_size_bound_goes_to_the_general_parser_before_it_arrives():
    header_only = client_frame(2, b"x" * 70000)[:14]
    assert read_frame(header_only, 0, MAX) == (Kind.OTHER, b"", 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=70000 // 50), max_size=5), st.integers(0, 40))
def test_any_sequence_of_frames_cut_anywhere_reads_back_whole(payloads, cut):
    data = b"".join(client_frame(2, p) for p in payloads)
    buffer = bytearray(data[:cut])
    rest = data[cut:]
    seen, offset = [], 0
    for chunk in (None, rest):
        if chunk is not None:
            buffer += chunk
        while True:
            kind, payload, offset = read_frame(buffer, offset, MAX)
            if kind is Kind.PARTIAL:
                break
            assert kind is Kind.BINARY
            seen.append(payload)
    assert seen == payloads
