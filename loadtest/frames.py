"""Encoding of the driver's outgoing messages and decoding of the server's, per codec.

Inputs are built from pre-encoded constant parts plus the three integers that change, so a
player's input costs a few C calls and one concatenation, not a dict build and a generic
encode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgpack

from tickrelay.loadtest.config import Codec

InputEncoder = Callable[[int, int, int], bytes]
Decoder = Callable[[bytes], Any]

_pack = msgpack.packb
_MP_PREFIX: bytes = b"\x83" + _pack("t") + _pack("input") + _pack("seq")
_MP_MID: bytes = _pack("d") + b"\x82" + _pack("x")
_MP_Y: bytes = _pack("y")


def _mp_input(seq: int, x: int, y: int) -> bytes:
    return _MP_PREFIX + _pack(seq) + _MP_MID + _pack(x) + _MP_Y + _pack(y)


def _json_input(seq: int, x: int, y: int) -> bytes:
    return b'{"t":"input","seq":%d,"d":{"x":%d,"y":%d}}' % (seq, x, y)


def _mp_decode(payload: bytes) -> Any:
    return msgpack.unpackb(payload)


class SharedDecoder:
    """Decodes each distinct frame once per driver process.

    A relay encodes a room's state once and sends the same bytes to every member, so the
    members of a room that live in the same driver process receive identical payloads;
    decoding them once instead of once per member divides the driver's biggest per-message
    cost by the room size. Decoded messages are shared and must be treated as read-only.
    The cache is bounded (cleared when full), so it can only cost memory, never correctness.
    """

    __slots__ = ("_cache", "_decode", "_limit")

    def __init__(self, codec: Codec, limit: int = 1024) -> None:
        self._decode = decoder(codec)
        self._cache: dict[bytes, Any] = {}
        self._limit = limit

    def __call__(self, payload: bytes) -> Any:
        cache = self._cache
        msg = cache.get(payload)
        if msg is None:
            msg = self._decode(payload)
            if len(cache) >= self._limit:
                cache.clear()
            cache[payload] = msg
        return msg


def input_encoder(codec: Codec) -> InputEncoder:
    """`encode(seq, x, y)` -> payload of `{"t":"input","seq":seq,"d":{"x":x,"y":y}}`."""
    return _mp_input if codec == "msgpack" else _json_input


def decoder(codec: Codec) -> Decoder:
    """Payload -> message (a dict for well-formed server messages)."""
    return _mp_decode if codec == "msgpack" else json.loads


def encode(codec: Codec, message: dict[str, Any]) -> bytes:
    """Generic encoder for the rare messages (`leave`)."""
    if codec == "msgpack":
        return msgpack.packb(message)
    return json.dumps(message, separators=(",", ":")).encode()


def is_text(codec: Codec) -> bool:
    """JSON travels in text frames, MessagePack in binary ones."""
    return codec == "json"
