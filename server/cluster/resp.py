"""Just enough RESP2 for the bus's two hot connections (sans-I/O).

The bus publishes a few hundred batches a second and reads as many. Through redis-py each
publish cost about 130 µs of client CPU (pipeline object, retry wrapper, pool, a
``wait_for`` per write, a Python reply parser reading line by line) and each message read
about as much again; on a shared core that was the largest part of what a second worker
costs. What these two connections say is tiny: ``PUBLISH``, ``SUBSCRIBE``, ``PING``,
``AUTH`` out; integers, status lines, errors and the arrays of pushed messages in. Every
other Redis command of the cluster (leases, checkpoints, the directory) stays on redis-py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CRLF = b"\r\n"
MAX_DEPTH = 8  # what the bus reads nests two deep; more is not Redis talking


class RespError(Exception):
    """An error reply (``-ERR ...``): returned as a value, the caller decides."""


class ProtocolViolation(ValueError):
    """Bytes that are not RESP2: the connection is unusable and must be dropped."""


def command(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(CRLF)
    return b"".join(parts)


def publish_commands(batches: Iterable[tuple[str, bytes]]) -> bytes:
    """Several ``PUBLISH`` commands in one buffer: one write, one syscall."""
    return b"".join(command("PUBLISH", channel, data) for channel, data in batches)


class _Incomplete(Exception):
    """The buffer ends inside a value: wait for more bytes."""


class RespReader:
    """Turns received bytes into replies, however the stream was cut.

    Values: ``bytes`` (bulk and status strings), ``int``, ``None`` (null bulk or array),
    ``list`` (arrays, nested), ``RespError``. An incomplete array is parsed again from its
    start on the next feed: cheap for what the bus reads (arrays of three), quadratic for
    huge arrays, which it never asks for.
    """

    def __init__(self, max_bulk: int = 512 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_bulk = max_bulk

    def feed(self, data: bytes) -> list[Any]:
        """Everything complete so far, in order; the rest waits for the next feed."""
        buffer = self._buffer
        buffer += data
        replies: list[Any] = []
        position = 0
        while position < len(buffer):
            try:
                value, position_after = self._value(buffer, position)
            except _Incomplete:
                break
            replies.append(value)
            position = position_after
        if position:
            del buffer[:position]
        return replies

    def _line(self, buffer: bytearray, position: int) -> tuple[bytes, int]:
        end = buffer.find(CRLF, position)
        if end < 0:
            raise _Incomplete
        return bytes(buffer[position:end]), end + 2

    def _value(self, buffer: bytearray, position: int, depth: int = 0) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise ProtocolViolation("arrays nested too deep")
        line, position = self._line(buffer, position)
        if not line:
            raise ProtocolViolation("empty RESP line")
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = self._int(rest)
            if size < 0:
                return None, position
            if size > self._max_bulk:
                raise ProtocolViolation(f"bulk string of {size} bytes")
            end = position + size
            if len(buffer) < end + 2:
                raise _Incomplete
            if buffer[end : end + 2] != CRLF:
                raise ProtocolViolation("bulk string not followed by CRLF")
            return bytes(buffer[position:end]), end + 2
        if kind == b"*":
            count = self._int(rest)
            if count < 0:
                return None, position
            items = []
            for _ in range(count):
                item, position = self._value(buffer, position, depth + 1)
                items.append(item)
            return items, position
        if kind == b":":
            return self._int(rest), position
        if kind == b"+":
            return rest, position
        if kind == b"-":
            return RespError(rest.decode(errors="replace")), position
        raise ProtocolViolation(f"unknown RESP type {kind!r}")

    @staticmethod
    def _int(text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise ProtocolViolation(f"bad RESP integer {text!r}") from None
