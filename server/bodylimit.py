"""A bound on HTTP request bodies, checked before the app reads one.

Every body this API takes is a few hundred bytes of JSON; without a bound, one 64 MiB POST
took 330 MB of memory. A declared ``Content-Length`` over the bound is refused before a byte
of the body is read; a chunked body is counted as it arrives and refused as soon as it
passes the bound. A body within the bound is read here (it is small) and handed to the app
whole, so the app never sees a partial body.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """The body passed the bound while it was being read."""


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser refuses a malformed one before the app runs
    return None


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_body_size`` bytes."""

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_body_size:
            await self.refuse(send)
            return
        try:
            first = await self.read_body(receive)
        except BodyTooLarge:
            await self.refuse(send)
            return
        await self.app(scope, _Replay(first, receive), send)

    async def read_body(self, receive: Receive) -> Message:
        """The whole body as one ``http.request`` message (or the disconnect that ended it)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            part = message.get("body", b"")
            size += len(part)
            if size > self.max_body_size:
                raise BodyTooLarge
            parts.append(part)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}

    async def refuse(self, send: Send) -> None:
        """413, and the connection closes: the rest of the body is never read."""
        body = json.dumps({"detail": f"request body over {self.max_body_size} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _Replay:
    """A ``receive`` that gives the body read ahead first, then the connection's own."""

    __slots__ = ("_first", "_receive")

    def __init__(self, first: Message, receive: Receive) -> None:
        self._first: Message | None = first
        self._receive = receive

    async def __call__(self) -> Any:
        first, self._first = self._first, None
        if first is not None:
            return first
        return await self._receive()
