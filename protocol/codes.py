"""Numeric and string codes of the wire contract (PROTOCOL.md sections 2 and 8).

They live in one module so the server, the client and the load tester agree on every
value without importing each other.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["RECONNECTABLE", "CloseCode", "ErrorCode", "LeaveReason"]


class CloseCode(IntEnum):
    """WebSocket close codes; an ``IntEnum`` so they can be passed straight to ``close()``."""

    NORMAL = 1000
    POLICY = 1008
    TOO_LARGE = 1009
    INTERNAL = 1011
    RESTART = 1012
    TRY_AGAIN = 1013
    BAD_REQUEST = 4000
    UNAUTHORIZED = 4001
    FORBIDDEN = 4003
    NO_ROOM = 4004
    ROOM_FULL = 4009
    REPLACED = 4010
    SLOW_CONSUMER = 4011
    RESUME_FAILED = 4012
    KICKED = 4013

    @property
    def reason(self) -> str:
        """Default close reason: browsers hide handshake statuses, so this text is what
        a developer sees in the close event (kept far below the 123-byte frame limit)."""
        return _REASONS[self]


_REASONS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "left the room",
    CloseCode.POLICY: "rate limit exceeded",
    CloseCode.TOO_LARGE: "message too large",
    CloseCode.INTERNAL: "internal error",
    CloseCode.RESTART: "server restarting",
    CloseCode.TRY_AGAIN: "try again later",
    CloseCode.BAD_REQUEST: "bad request",
    CloseCode.UNAUTHORIZED: "unauthorized",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.NO_ROOM: "no such room",
    CloseCode.ROOM_FULL: "room full",
    CloseCode.REPLACED: "replaced by a newer connection",
    CloseCode.SLOW_CONSUMER: "slow consumer",
    CloseCode.RESUME_FAILED: "resume failed",
    CloseCode.KICKED: "kicked",
}

#: Codes after which a client may reconnect with ``resume`` without changing anything
#: (1006 is the abnormal-closure code a client observes itself, never one that is sent).
RECONNECTABLE: frozenset[int] = frozenset({1006, 1011, 1012, 1013, 4011})


class ErrorCode(StrEnum):
    """``code`` of an ``error`` message: a refused request on a connection that stays open."""

    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    STALE = "stale"
    NOT_HOST = "not_host"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    SPECTATOR = "spectator"


class LeaveReason(StrEnum):
    """``reason`` of a ``leave`` message, telling the other members why a seat ended."""

    LEFT = "left"
    TIMEOUT = "timeout"
    KICKED = "kicked"
    CLOSED = "closed"
    ERROR = "error"
