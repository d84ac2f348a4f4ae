"""Frame codecs for the two subprotocols, with the contract's hard limits (section 2).

``decode`` is the trust boundary of the server: whatever bytes or text a client sends,
it either returns a plain ``dict`` whose keys are all strings, with a string ``t`` and at
most ``max_depth`` levels of nesting, or raises ``ProtocolError``; never anything else.
It deliberately lets bin values, NaN/inf floats and out-of-int64 integers through: the
contract answers those with ``bad_message`` (see ``parse_client_message``), not a close.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import msgpack

from .codes import CloseCode
from .errors import ProtocolError

__all__ = [
    "DEFAULT_LIMITS",
    "JSON_SUBPROTOCOL",
    "MSGPACK_SUBPROTOCOL",
    "Codec",
    "JsonCodec",
    "Limits",
    "MsgpackCodec",
    "codec_for",
    "negotiate",
]

MSGPACK_SUBPROTOCOL = "tickrelay.v1.msgpack"
JSON_SUBPROTOCOL = "tickrelay.v1.json"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-message bounds, checked before a message reaches any game code.

    ``max_depth`` counts containers: the message map itself is level 1, so a message
    ``{"t": "input", "d": {"a": [1]}}`` has depth 3.
    """

    max_message_size: int = 65536
    max_depth: int = 32

    def __post_init__(self) -> None:
        if self.max_message_size < 1 or self.max_depth < 1:
            raise ValueError("Limits must be positive")


DEFAULT_LIMITS = Limits()


def _bad(reason: str) -> ProtocolError:
    return ProtocolError(CloseCode.BAD_REQUEST, reason)


def _too_large() -> ProtocolError:
    return ProtocolError(CloseCode.TOO_LARGE, CloseCode.TOO_LARGE.reason)


# Exact types only: a decoder never produces subclasses, and anything else it can produce
# (msgpack.Timestamp, msgpack.ExtType) is an extension type the contract forbids.
_SCALARS: frozenset[type] = frozenset({str, int, float, bool, bytes, type(None)})


def _check_tree(node: dict[Any, Any] | list[Any], depth: int, max_depth: int) -> None:
    """Enforce string keys, depth and the value whitelist in one pass over the tree.

    Recursion is safe here: it stops at ``max_depth``, however deep the input is. This runs
    on every frame a client sends, hence one loop over the items rather than two.
    """
    if depth > max_depth:
        raise _bad("nesting too deep")
    if type(node) is dict:
        for key, value in node.items():
            if type(key) is not str:
                raise _bad("map key is not a string")
            kind = type(value)
            if kind in _SCALARS:
                continue
            if kind is dict or kind is list:
                _check_tree(value, depth + 1, max_depth)
            else:
                raise _bad("extension type")
        return
    for value in node:
        kind = type(value)
        if kind in _SCALARS:
            continue
        if kind is dict or kind is list:
            _check_tree(value, depth + 1, max_depth)
        else:
            raise _bad("extension type")


def _check_message(obj: Any, max_depth: int) -> dict[str, Any]:
    if type(obj) is not dict:
        raise _bad("message is not a map")
    try:
        _check_tree(obj, 1, max_depth)
    except RecursionError as exc:  # only reachable with a max_depth near the stack limit
        raise _bad("nesting too deep") from exc
    if type(obj.get("t")) is not str:
        raise _bad("missing or non-string t")
    return obj


class Codec(ABC):
    """One subprotocol's framing. Instances are immutable and safe to share."""

    __slots__ = ("limits",)

    subprotocol: ClassVar[str]
    binary: ClassVar[bool]

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    @abstractmethod
    def decode(self, frame: bytes | str) -> dict[str, Any]:
        """Return the message of ``frame`` or raise ``ProtocolError`` (and nothing else)."""

    @abstractmethod
    def encode(self, message: dict[str, Any]) -> bytes | str:
        """Return the frame payload; its kind (bytes or str) tells the frame kind."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.limits!r})"


# --- MessagePack -------------------------------------------------------------------------


class _ExtTypeSeen(Exception):
    """Raised from inside msgpack's ext hook to abort decoding at the first ext value."""


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise _ExtTypeSeen(code)


def _unpack(frame: bytes | bytearray | memoryview) -> Any:
    """msgpack raises a zoo of exception types (ValueError subclasses, TypeError for
    unhashable keys, ...): all of them mean an undecodable frame, so all map to 4000."""
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=False, ext_hook=_reject_ext)
    except msgpack.ExtraData as exc:
        raise _bad("trailing bytes") from exc
    except _ExtTypeSeen as exc:
        raise _bad("extension type") from exc
    except UnicodeDecodeError as exc:
        raise _bad("invalid UTF-8") from exc
    except (msgpack.StackError, RecursionError) as exc:
        raise _bad("nesting too deep") from exc
    except Exception as exc:
        raise _bad("undecodable frame") from exc


_BINARY_FRAMES = (bytes, bytearray, memoryview)


class MsgpackCodec(Codec):
    """``tickrelay.v1.msgpack``: one map per binary frame."""

    __slots__ = ()
    subprotocol = MSGPACK_SUBPROTOCOL
    binary = True

    def decode(self, frame: bytes | str) -> dict[str, Any]:
        if type(frame) is bytes:  # what the server's reader hands over: skip the slow checks
            size = len(frame)
        elif not isinstance(frame, _BINARY_FRAMES):
            raise _bad("wrong frame kind: binary expected")
        else:
            size = frame.nbytes if isinstance(frame, memoryview) else len(frame)
        if size > self.limits.max_message_size:
            raise _too_large()
        return _check_message(_unpack(frame), self.limits.max_depth)

    def encode(self, message: dict[str, Any]) -> bytes:
        # packb rather than a shared Packer: a Packer is not thread-safe, and the saving
        # (a fraction of a microsecond) is not worth a hidden constraint on callers.
        return msgpack.packb(message, use_bin_type=True)


# --- JSON --------------------------------------------------------------------------------


class _NonFiniteConstant(Exception):
    """NaN/Infinity are accepted by Python's json module but are not JSON."""


def _reject_constant(name: str) -> NoReturn:
    raise _NonFiniteConstant(name)


class _IntTooLong(Exception):
    """Python refused an integer literal over its digit limit (a ValueError in json)."""


def _parse_int_bounded(literal: str) -> int:
    # Anything over 20 characters is outside int64 ("-9223372036854775808" has 20, and
    # JSON forbids leading zeros), so a marker outside int64 keeps the meaning
    # (bad_message later) without ever converting a huge literal.
    if len(literal) <= 20:
        return int(literal)
    return -(1 << 64) if literal[0] == "-" else 1 << 64


_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode
_decode_json_bounded = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_parse_int_bounded
).decode
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_encode_json_lenient = json.JSONEncoder(ensure_ascii=False, allow_nan=True).encode
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json_attempt(decode: Callable[[str], Any], text: str) -> Any:
    try:
        return decode(text)
    except json.JSONDecodeError as exc:
        raise _bad("invalid JSON") from exc
    except _NonFiniteConstant as exc:
        raise _bad("invalid JSON: NaN and Infinity are not allowed") from exc
    except RecursionError as exc:
        raise _bad("nesting too deep") from exc
    except ValueError as exc:
        raise _IntTooLong from exc
    except Exception as exc:
        raise _bad("invalid JSON") from exc


def _loads(text: str) -> Any:
    """Parse with C-speed ``int`` first; a custom ``parse_int`` costs ~50% on every
    message, so it is only used for the rare frame whose integer Python refuses."""
    try:
        return _json_attempt(_decode_json, text)
    except _IntTooLong:
        pass
    try:
        return _json_attempt(_decode_json_bounded, text)
    except _IntTooLong as exc:
        raise _bad("invalid JSON") from exc


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _bad("invalid UTF-8") from exc


def _check_escaped_surrogates(message: dict[str, Any]) -> None:
    """A lone surrogate written as a ``\\ud800`` escape is valid JSON syntax but not
    Unicode: it could not be sent on as UTF-8 (MessagePack, or any text frame), so it
    is treated like invalid UTF-8. Only frames containing such an escape pay for this."""
    try:
        _encode_json_lenient(message).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _bad("invalid UTF-8: lone surrogate") from exc
    except (ValueError, RecursionError) as exc:  # a max_depth near the stack limit
        raise _bad("nesting too deep") from exc


class JsonCodec(Codec):
    """``tickrelay.v1.json``: one JSON object per text frame (browsers, debugging)."""

    __slots__ = ()
    subprotocol = JSON_SUBPROTOCOL
    binary = False

    def decode(self, frame: bytes | str) -> dict[str, Any]:
        if not isinstance(frame, str):
            raise _bad("wrong frame kind: text expected")
        limit = self.limits.max_message_size
        if len(frame) > limit or _utf8_size(frame) > limit:
            raise _too_large()
        message = _check_message(_loads(frame), self.limits.max_depth)
        if "\\u" in frame and _SURROGATE_ESCAPE.search(frame):
            _check_escaped_surrogates(message)
        return message

    def encode(self, message: dict[str, Any]) -> str:
        return _encode_json(message)


# --- negotiation -------------------------------------------------------------------------

_CODECS: dict[str, type[Codec]] = {
    MSGPACK_SUBPROTOCOL: MsgpackCodec,
    JSON_SUBPROTOCOL: JsonCodec,
}


def negotiate(offered: Sequence[str]) -> str | None:
    """Pick the subprotocol per section 1: the client's first known offer wins, msgpack is
    the default when nothing is offered, and None (refuse the handshake) when every offer
    is unknown."""
    if not offered:
        return MSGPACK_SUBPROTOCOL
    for name in offered:
        candidate = name.strip()
        if candidate in _CODECS:
            return candidate
    return None


def codec_for(subprotocol: str, limits: Limits = DEFAULT_LIMITS) -> Codec:
    """Build the codec of a negotiated subprotocol; an unknown name is a caller bug."""
    try:
        return _CODECS[subprotocol](limits)
    except KeyError:
        raise ValueError(f"unknown subprotocol {subprotocol!r}") from None
