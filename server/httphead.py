"""uvicorn's HTTP protocols with a bound on the time and size of a request head.

uvicorn waits for a request head for ever, and with httptools it buffers a request line or
a header of any size: one client could hold a connection open with half a line, or make
the server keep 32 MiB for one request. Here a head must be complete within
``handshake_timeout`` seconds of the connection (or of its first byte, for a later request
on a kept-alive connection), and at most ``max_request_head`` bytes may arrive before it
is; otherwise the client gets 408 or 431 and the connection closes. Every WebSocket starts
as such a request, so this also bounds the WebSocket handshake.
"""

from __future__ import annotations

import asyncio
import enum
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class Head(enum.Enum):
    """Where the connection is in reading a request head."""

    AWAITED = "awaited"  # the connection is new, or a request has begun: the clock runs
    DONE = "done"  # the app has the request (or the connection was refused)
    IDLE = "idle"  # no head yet, no clock


def refusal(status: HTTPStatus) -> bytes:
    body = f"{status.value} {status.phrase}\n".encode()
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class HeadBounds:
    """Mixin for an uvicorn HTTP protocol; the concrete class says when a head begins/ends."""

    head_timeout: float = 10.0
    max_head: int = 16 * 1024
    transport: asyncio.Transport
    _head = Head.IDLE
    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._head_begins()  # a connection that sends nothing is on the clock too

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_ends()
        super().connection_lost(exc)  # type: ignore[misc]

    def _head_begins(self) -> None:
        if self._head is Head.AWAITED:
            return
        self._head = Head.AWAITED
        self._head_bytes = 0
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_ends(self) -> None:
        self._head = Head.DONE
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _count_head(self, size: int) -> None:
        """Bytes that arrived while the head is still incomplete."""
        if self._head is not Head.AWAITED:
            return
        self._head_bytes += size
        if self._head_bytes > self.max_head:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head is Head.AWAITED:
            self._refuse(HTTPStatus.REQUEST_TIMEOUT)

    def _refuse(self, status: HTTPStatus) -> None:
        self._head_ends()
        transport = self.transport
        if not transport.is_closing():
            transport.write(refusal(status))
            transport.close()


class BoundedHttpToolsProtocol(HeadBounds, HttpToolsProtocol):  # type: ignore[misc,valid-type]
    """httptools: the parser's callbacks mark a head's begin and end; bytes are counted."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.transport.is_closing():
            self._count_head(len(data))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begins()

    def on_headers_complete(self) -> None:
        self._head_ends()
        super().on_headers_complete()


class BoundedH11Protocol(HeadBounds, H11Protocol):
    """h11 bounds the size itself (``h11_max_incomplete_event_size``); this adds the clock."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            self._head_ends()
        elif self.conn.their_state is h11.IDLE:
            self._head_begins()  # some bytes of a head, not all of it
            self._count_head(len(data))
        else:
            self._head_ends()


def bounded_http_protocol(head_timeout: float, max_head: int) -> type[Any]:
    """The HTTP protocol class to give uvicorn (``http=``), with these bounds."""
    base = BoundedHttpToolsProtocol if HttpToolsProtocol is not None else BoundedH11Protocol
    return type(base.__name__, (base,), {"head_timeout": head_timeout, "max_head": max_head})
