"""WebSocket framing without I/O: frames the server writes, and a fast reader of client frames.

Game clients send many small, whole, masked data frames. websockets' general parser (a
generator that handles every case of RFC 6455) costs a few microseconds per frame; this
reader splits complete, unfragmented, masked binary/text frames out of a byte buffer with a
few slices and a C unmask. Anything else (control frames, fragments, reserved bits, an
unmasked frame, a frame over the size bound) is reported to the caller, which hands it to
the general parser or handles it itself.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from websockets.frames import apply_mask


class Kind(IntEnum):
    """What ``read_frame`` found at the start of the buffer."""

    PARTIAL = 0  # not a whole frame yet: wait for more bytes
    BINARY = 2
    TEXT = 1
    PING = 9
    PONG = 10
    OTHER = 99  # anything the fast path does not handle: give it to the general parser


# ``Kind(opcode)`` is an enum lookup through EnumMeta.__call__, about 1 µs: half of what
# this reader costs per frame. A table lookup is a twentieth of that.
_KIND_OF_OPCODE: tuple[Kind | None, ...] = tuple(
    Kind(op) if op in (1, 2, 9, 10) else None for op in range(16)
)


def read_frame(buffer: bytes | bytearray, start: int, max_size: int) -> tuple[Kind, bytes, int]:
    """Read the frame at ``buffer[start:]``: (kind, unmasked payload, offset after it).

    PING and PONG are returned only when whole and at most 125 bytes (the RFC's bound);
    OTHER leaves ``start`` unchanged so the general parser can begin at that frame.
    """
    available = len(buffer) - start
    if available < 2:
        return Kind.PARTIAL, b"", start
    first = buffer[start]
    second = buffer[start + 1]
    opcode = first & 0x0F
    if first & 0x70 or not second & 0x80:  # reserved bits, or an unmasked client frame
        return Kind.OTHER, b"", start
    if not first & 0x80 and opcode in (1, 2):  # a fragment: the general parser joins them
        return Kind.OTHER, b"", start
    kind = _KIND_OF_OPCODE[opcode]
    if kind is None:
        return Kind.OTHER, b"", start
    length = second & 0x7F
    offset = start + 2
    if length == 126:
        if available < 4:
            return Kind.PARTIAL, b"", start
        length = int.from_bytes(buffer[offset : offset + 2], "big")
        offset += 2
    elif length == 127:
        if available < 10:
            return Kind.PARTIAL, b"", start
        length = int.from_bytes(buffer[offset : offset + 8], "big")
        offset += 8
    if length > max_size or (opcode >= 8 and length > 125):
        return Kind.OTHER, b"", start
    end = offset + 4 + length
    if len(buffer) < end:
        return Kind.PARTIAL, b"", start
    # apply_mask takes any buffer and returns new bytes: slices need no extra copy.
    payload = apply_mask(buffer[offset + 4 : end], buffer[offset : offset + 4])
    return kind, payload, end


_TEXT = 0x81  # FIN + text opcode
_BINARY = 0x82  # FIN + binary opcode


def frame(payload: bytes | str) -> bytes:
    """One unmasked, unfragmented WebSocket frame (RFC 6455 section 5.2).

    Server frames carry no mask, so the same framed bytes can be written to every client
    that should receive the message: framing is done once, not once per client.
    """
    if isinstance(payload, str):
        data, first = payload.encode(), _TEXT
    else:
        data, first = payload, _BINARY
    size = len(data)
    if size < 126:
        header = bytes((first, size))
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + data
