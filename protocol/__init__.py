"""tickrelay's wire protocol, sans I/O: codecs, message validation, merge patches and the
client-side state mirror. Nothing here touches a socket, so the server, the client and
the load tester share one implementation of the contract (docs/PROTOCOL.md)."""

from .codec import (
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    Codec,
    JsonCodec,
    Limits,
    MsgpackCodec,
    codec_for,
    negotiate,
)
from .codes import RECONNECTABLE, CloseCode, ErrorCode, LeaveReason
from .errors import MessageError, ProtocolError
from .messages import (
    ClientMessage,
    Event,
    Input,
    Leave,
    Ping,
    now_ms,
    parse_client_message,
)
from .mirror import MirrorError, StateMirror
from .patch import apply_patch, diff

__all__ = [
    "JSON_SUBPROTOCOL",
    "MSGPACK_SUBPROTOCOL",
    "RECONNECTABLE",
    "ClientMessage",
    "CloseCode",
    "Codec",
    "ErrorCode",
    "Event",
    "Input",
    "JsonCodec",
    "Leave",
    "LeaveReason",
    "Limits",
    "MessageError",
    "MirrorError",
    "MsgpackCodec",
    "Ping",
    "ProtocolError",
    "StateMirror",
    "apply_patch",
    "codec_for",
    "diff",
    "negotiate",
    "now_ms",
    "parse_client_message",
]
