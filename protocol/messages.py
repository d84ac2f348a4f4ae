"""Typed client messages and plain-dict server messages (PROTOCOL.md section 2).

Client messages are parsed into frozen dataclasses so that server code never touches an
unvalidated field; server messages stay plain dicts because they only go to ``encode``
and a dict is what the codecs (and JSON clients) take without conversion.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from math import isfinite
from typing import Any, TypeAlias

from .codes import ErrorCode, LeaveReason
from .errors import MessageError

__all__ = [
    "ClientMessage",
    "Event",
    "Input",
    "Leave",
    "Ping",
    "away",
    "back",
    "delta",
    "error",
    "event",
    "host",
    "join",
    "leave",
    "now_ms",
    "parse_client_message",
    "pong",
    "snap",
    "welcome",
]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Input:
    """``input``: ``d`` patches the sender's player state, ``room`` the room state
    (host only); ``room`` is None when the input carries no room patch."""

    seq: int
    d: dict[str, Any]
    room: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """``event``: relayed at once; ``to`` None means every other member."""

    d: Any = None
    to: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """``ping``: ``ct`` is the client's clock, echoed in the ``pong`` when given."""

    id: int
    ct: int | float | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    """``leave``: give up the seat now, without a resume grace."""


ClientMessage: TypeAlias = Input | Event | Ping | Leave


# --- validation --------------------------------------------------------------------------


def _bad(msg: str, ref: int | str) -> MessageError:
    return MessageError(ErrorCode.BAD_MESSAGE, msg, ref)


def _is_int64(value: Any) -> bool:
    # type() rather than isinstance(): bool is an int subclass and True is not an id.
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _is_number(value: Any) -> bool:
    return _is_int64(value) or (type(value) is float and isfinite(value))


def _json_safe_items(items: Iterable[Any]) -> bool:
    """True when every value can be carried by both codecs unchanged.

    Everything a client sends reaches JSON clients too, so bin values, NaN, infinities
    and integers outside int64 (which MessagePack cannot even encode) are refused here.
    Scalars are tested inline: this runs on every input and a call per leaf would double
    its cost.
    """
    for item in items:
        kind = type(item)
        if kind is int:
            if not _INT64_MIN <= item <= _INT64_MAX:
                return False
        elif kind is float:
            if not isfinite(item):
                return False
        elif kind is dict:
            if not _json_safe_map(item):
                return False
        elif kind is list:
            if not _json_safe_items(item):
                return False
        elif kind is not str and kind is not bool and item is not None:
            return False
    return True


def _json_safe_map(value: dict[Any, Any]) -> bool:
    for key in value:
        if type(key) is not str:
            return False
    return _json_safe_items(value.values())


_make = object.__new__
_set_seq = Input.__dict__["seq"].__set__
_set_d = Input.__dict__["d"].__set__
_set_room = Input.__dict__["room"].__set__


def _new_input(seq: int, d: dict[str, Any], room: dict[str, Any] | None) -> Input:
    """``Input(seq, d, room)`` for already validated fields, without the frozen
    dataclass ``__init__`` (three ``object.__setattr__`` calls through the MRO): it was
    40% of parsing an input (5.7k -> 3.5k instructions under callgrind)."""
    message = _make(Input)
    _set_seq(message, seq)
    _set_d(message, d)
    _set_room(message, room)
    return message


def _parse_input(msg: dict[str, Any]) -> Input:
    seq = msg.get("seq")
    if not (_is_int64(seq) and seq >= 1):
        raise _bad("seq must be an integer >= 1", "input")
    d = msg.get("d")
    if type(d) is not dict:
        raise _bad("d must be a map", seq)
    if not _json_safe_map(d):
        raise _bad("d holds bin, NaN, infinity or an integer outside int64", seq)
    room = msg.get("room")
    if room is not None:
        if type(room) is not dict:
            raise _bad("room must be a map", seq)
        if not _json_safe_map(room):
            raise _bad("room holds bin, NaN, infinity or an integer outside int64", seq)
    return _new_input(seq, d, room)


def _parse_event(msg: dict[str, Any]) -> Event:
    d = msg.get("d")
    if not _json_safe_items((d,)):
        raise _bad("d holds bin, NaN, infinity or an integer outside int64", "event")
    to = msg.get("to")
    if to is not None and not (type(to) is list and all(type(pid) is str for pid in to)):
        raise _bad("to must be a list of pids", "event")
    return Event(d, to)


def _parse_ping(msg: dict[str, Any]) -> Ping:
    ping_id = msg.get("id")
    if not _is_int64(ping_id):
        raise _bad("id must be an integer", "ping")
    ct = msg.get("ct")
    if ct is not None and not _is_number(ct):
        raise _bad("ct must be a finite number", "ping")
    return Ping(ping_id, ct)


_LEAVE = Leave()


def _parse_leave(msg: dict[str, Any]) -> Leave:
    return _LEAVE


_PARSERS: dict[str, Callable[[dict[str, Any]], ClientMessage]] = {
    "input": _parse_input,
    "event": _parse_event,
    "ping": _parse_ping,
    "leave": _parse_leave,
}


def parse_client_message(msg: dict[str, Any]) -> ClientMessage:
    """Validate a decoded client message; ``MessageError`` means answer ``error`` and go on.

    Nothing of a refused message may be applied, so every field is checked before the
    dataclass exists. Unknown fields are ignored (forward compatibility). ``ref`` is the
    input's ``seq`` once that is valid (so a client can match the refusal to its input),
    else the message type.
    """
    t = msg.get("t")
    if type(t) is not str:
        raise MessageError(ErrorCode.BAD_MESSAGE, "missing or non-string t")
    parser = _PARSERS.get(t)
    if parser is None:
        raise MessageError(ErrorCode.UNKNOWN_TYPE, "unknown message type", t)
    return parser(msg)


# --- server-to-client builders -----------------------------------------------------------


def welcome(
    pid: str,
    room: str,
    tick: int,
    rate: int,
    host: str | None,
    resume: str,
    spectator: bool,
    resumed: bool,
    st: int,
) -> dict[str, Any]:
    return {
        "t": "welcome",
        "pid": pid,
        "room": room,
        "tick": tick,
        "rate": rate,
        "host": host,
        "resume": resume,
        "spectator": spectator,
        "resumed": resumed,
        "st": st,
    }


def snap(tick: int, st: int, s: dict[str, Any], acks: dict[str, int]) -> dict[str, Any]:
    return {"t": "snap", "tick": tick, "st": st, "s": s, "acks": acks}


def delta(
    tick: int, base: int, st: int, d: dict[str, Any], acks: dict[str, int | None]
) -> dict[str, Any]:
    return {"t": "delta", "tick": tick, "base": base, "st": st, "d": d, "acks": acks}


def event(from_: str | None, d: Any) -> dict[str, Any]:
    """``from_`` because ``from`` is a keyword; None means the server sent it."""
    return {"t": "event", "from": from_, "d": d}


def join(pid: str) -> dict[str, Any]:
    return {"t": "join", "pid": pid}


def leave(pid: str, reason: LeaveReason | str) -> dict[str, Any]:
    # str() turns a StrEnum into its plain value, so messages compare and log as on the wire.
    return {"t": "leave", "pid": pid, "reason": str(reason)}


def away(pid: str) -> dict[str, Any]:
    return {"t": "away", "pid": pid}


def back(pid: str) -> dict[str, Any]:
    return {"t": "back", "pid": pid}


def host(pid: str | None) -> dict[str, Any]:
    return {"t": "host", "pid": pid}


def pong(id: int, st: int, ct: int | float | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"t": "pong", "id": id, "st": st}
    if ct is not None:
        message["ct"] = ct
    return message


def error(code: ErrorCode | str, msg: str, ref: int | str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"t": "error", "code": str(code), "msg": msg}
    if ref is not None:
        message["ref"] = ref
    return message


def now_ms() -> int:
    """Wall clock (not monotonic): ``st`` lets clients estimate their offset to the server."""
    return time.time_ns() // 1_000_000
