"""A thin extension of uvicorn's WebSocket protocol that the app can use when present.

Through plain ASGI an app cannot see its connection's write buffer, cannot set its
high-water mark, and cannot close a connection whose buffer is full: ``websocket.close``
waits for the buffer to drain, which a stalled client never does. The protocol class below
offers those three things to the app under the scope extension ``tickrelay.transport``; the
app falls back to plain ASGI when it runs under another server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

EXTENSION = "tickrelay.transport"


class TransportHandle:
    """What the app may do to its own connection beyond ASGI."""

    def __init__(self, protocol: TickrelayWebSocketProtocol) -> None:
        self._protocol = protocol

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel."""
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            return 0
        return transport.get_write_buffer_size()

    @property
    def failed_code(self) -> int | None:
        """The close code uvicorn sent on its own (a frame over the size limit: 1009)."""
        return self._protocol.failed_code

    def set_high_water(self, high: int) -> None:
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.set_write_buffer_limits(high=high, low=high // 4)

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame at once, even past a full buffer, and end the connection."""
        self._protocol.close_now(code, reason)


class TickrelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol plus the ``tickrelay.transport`` extension."""

    failed_code: int | None = None

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = TransportHandle(self)

    def handle_parser_exception(self) -> None:
        if self.conn.close_sent is not None:
            self.failed_code = self.conn.close_sent.code
        super().handle_parser_exception()

    def close_now(self, code: int, reason: str) -> None:
        if self.close_sent or self.transport is None or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.writable.set()
        # A peer that is not reading will not answer the close: do not wait for it long.
        loop = asyncio.get_running_loop()
        self.close_timer = loop.call_later(1.0, self.transport.abort)
