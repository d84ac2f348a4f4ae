"""A thin extension of uvicorn's WebSocket protocol that the app can use when present.

Through plain ASGI an app cannot see its connection's write buffer, cannot set its
high-water mark, and cannot close a connection whose buffer is full: ``websocket.close``
waits for the buffer to drain, which a stalled client never does. The protocol class below
offers those three things to the app under the scope extension ``tickrelay.transport``; the
app falls back to plain ASGI when it runs under another server.

It also lets the app *detach*: once a player has joined, the app's coroutine returns and
the connection lives on, owned by its room and by this protocol, which hands incoming
messages and the final disconnect to plain callbacks. An idle connection then holds no
ASGI task and no suspended stack of middleware frames, only its own objects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol

from tickrelay.server.framing import Kind, read_frame

EXTENSION = "tickrelay.transport"
MessageHandler = Callable[[bytes | str], None]
DisconnectHandler = Callable[[int | None], None]

log = logging.getLogger("tickrelay.transport")

CLOSE_GRACE = 5.0  # seconds a closed peer has to read up to our close frame
# Pings a peer may send while its write buffer is above the high-water mark (it is not
# reading our pongs): past this it is flooding, and is closed 1008.
PING_FLOOD_LIMIT = 64


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
        """The close code the protocol sent on its own (a frame over the size limit: 1009)."""
        return self._protocol.failed_code

    @property
    def can_write_frames(self) -> bool:
        """Pre-framed writes are only valid without a per-connection compression context."""
        return not self._protocol.config.ws_per_message_deflate

    def write_frame(self, data: bytes) -> bool:
        """Write pre-framed bytes now if the transport takes them without waiting.

        False means "use the slow path": the buffer is above its high-water mark, or the
        connection is closing. Never blocks, never awaits.
        """
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        transport = protocol.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    def set_message_handler(self, handler: MessageHandler) -> None:
        """Deliver each incoming message by a plain call instead of the ASGI receive queue.

        Saves a queue round trip, a task switch and an ASGI event dict per message. Close
        and disconnect still arrive through ``receive()``.
        """
        self._protocol.start_fast_reading(handler)

    async def send(self, message: dict[str, Any]) -> None:
        """The connection's own ASGI ``send``, usable after a detach."""
        await self._protocol.send(message)  # type: ignore[arg-type]

    def detach(self, on_disconnect: DisconnectHandler) -> None:
        """Keep the connection open after the app's coroutine returns.

        Call after ``set_message_handler``. ``on_disconnect(code)`` runs once when the
        connection ends (the code the app would have got in ``websocket.disconnect``).
        """
        self._protocol.detach(on_disconnect)

    def set_high_water(self, high: int) -> None:
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.set_write_buffer_limits(high=high, low=high // 4)

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame at once, even past a full buffer, and end the connection."""
        self._protocol.close_now(code, reason)

    @property
    def slow_consumer_dropped(self) -> bool:
        """Whether the protocol aborted the connection for not reading (counted by /metrics)."""
        return self._protocol.slow_consumer_dropped

    def set_slow_consumer_timeout(self, seconds: float) -> None:
        """Drop the connection when its write buffer stays above high water this long."""
        self._protocol.slow_consumer_timeout = seconds


class _DisconnectSink:
    """Stands in for uvicorn's receive queue after a detach: passes on the first disconnect.

    The handler runs on the next loop iteration, as a queued message would have been read:
    a close decided inside a room callback (a 4011 during a tick's fan-out, say) must not
    re-enter the room while it is iterating over its members.
    """

    __slots__ = ("_handler",)

    def __init__(self, handler: DisconnectHandler) -> None:
        self._handler: DisconnectHandler | None = handler

    def put_nowait(self, message: dict[str, Any]) -> None:
        handler = self._handler
        if handler is None or message["type"] != "websocket.disconnect":
            return
        self._handler = None
        asyncio.get_running_loop().call_soon(_run_disconnect, handler, message.get("code"))


def _run_disconnect(handler: DisconnectHandler, code: int | None) -> None:
    try:
        handler(code)
    except Exception:
        log.exception("disconnect handler failed")


class TickrelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol plus the ``tickrelay.transport`` extension."""

    failed_code: int | None = None
    message_handler: MessageHandler | None = None
    _fast = False
    _pending: bytearray | None = None
    detached = False
    slow_consumer_timeout: float | None = None
    slow_consumer_dropped = False
    _slow_timer: asyncio.TimerHandle | None = None
    _held_pong: bytes | None = None
    _pings_while_blocked = 0

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = TransportHandle(self)

    def handle_parser_exception(self) -> None:
        """Send the close frame (1009 for a frame over the size bound), then half-close.

        uvicorn closes the socket at once; with the rest of the offending frame still
        arriving, the kernel then resets the connection and the client may never read the
        close frame (it sees 1006, not 1009). So: write the close frame and EOF, let the
        failed parser discard whatever still comes until the client's EOF ends the
        connection, and let go of the socket after ``CLOSE_GRACE`` at the latest.
        """
        if self.close_sent or self.transport.is_closing():
            return  # later data of a failed connection, already discarded by the parser
        close = self.conn.close_sent
        assert close is not None
        self.failed_code = close.code
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        )
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.close_timer = self.loop.call_later(CLOSE_GRACE, self.transport.abort)

    def start_fast_reading(self, handler: MessageHandler) -> None:
        """Hand each message to ``handler``; read frames with the fast reader when we can.

        The fast reader takes over only at a frame boundary of websockets' parser: nothing
        may have arrived since the handshake (a client cannot send before our 101).
        """
        self.message_handler = handler
        conn = self.conn
        clean = not conn.reader.buffer and not self.frames
        self._fast = clean and not self.config.ws_per_message_deflate
        if clean:
            # websockets' server parser keeps the handshake request alive in its generator
            # frame for the life of the connection. At a frame boundary, swap in the plain
            # frame parser, as websockets itself swaps parsers when a connection closes.
            conn.parser = Protocol.parse(conn)
            next(conn.parser)

    def detach(self, on_disconnect: DisconnectHandler) -> None:
        pending = self.queue
        sink = _DisconnectSink(on_disconnect)
        self.queue = sink  # type: ignore[assignment]
        self.detached = True
        # The handshake is over: let go of its request, response and ASGI scope (headers,
        # the framework's exit stacks), keeping what uvicorn's log lines read.
        self.request = self.response = None  # type: ignore[assignment]
        scope = self.scope
        self.scope = {  # type: ignore[typeddict-item]
            "type": "websocket",
            "client": scope.get("client"),
            "root_path": scope.get("root_path", ""),
            "path": scope.get("path", ""),
            "query_string": b"",
        }
        while not pending.empty():
            message = pending.get_nowait()
            if message["type"] == "websocket.receive" and self.message_handler is not None:
                self._deliver(message.get("bytes") or message.get("text") or b"")
            else:
                sink.put_nowait(message)  # type: ignore[arg-type]
        if self.read_paused:
            # uvicorn pauses reading after each message it queues until the app reads it,
            # and nobody reads that queue any more: a message that came during an awaited
            # join (a room owned by another worker) would leave this socket deaf for good.
            self.read_paused = False
            if self.writable.is_set():  # not paused by our own backpressure
                self.transport.resume_reading()

    async def run_asgi(self) -> None:
        """uvicorn's, except that the connection stays open when the app has detached."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.detached and not self.disconnected:
            return
        if self.close_timer is None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._fast:
            super().data_received(data)
            return
        pending = self._pending
        buffer: bytes | bytearray = pending + data if pending else data
        self._pending = None
        offset = 0
        max_size = self.config.ws_max_size
        while True:
            if self.close_sent:  # the closing handshake is websockets' business
                self._slow_down(buffer, offset)
                return
            kind, payload, end = read_frame(buffer, offset, max_size)
            if kind is Kind.PARTIAL:
                if offset < len(buffer):
                    self._pending = bytearray(buffer[offset:])
                return
            if kind is Kind.OTHER:
                self._slow_down(buffer, offset)
                return
            offset = end
            if kind is Kind.BINARY:
                self._deliver(payload)
            elif kind is Kind.TEXT:
                self._deliver_text(payload)
            elif kind is Kind.PING:
                self._answer_ping(payload)
            else:
                self.handle_pong(Frame(Opcode.PONG, payload))

    def _slow_down(self, buffer: bytes | bytearray, offset: int) -> None:
        """From this frame on, websockets' general parser reads everything."""
        self._fast = False
        if offset < len(buffer):
            super().data_received(bytes(buffer[offset:]))

    def send_receive_event_to_app(self) -> None:
        if self.message_handler is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        if self.curr_msg_data_type == "text":
            self._deliver_text(bytes(data))
        else:
            self._deliver(bytes(data))

    def _deliver_text(self, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.failed_code = 4000  # undecodable frame: the contract's 4000
            self.close_now(4000, "invalid UTF-8")
            return
        self._deliver(text)

    def _deliver(self, message: bytes | str) -> None:
        try:
            self.message_handler(message)  # type: ignore[misc]
        except Exception:
            log.exception("message handler failed")
            self.close_now(1011, "internal error")

    def close_now(self, code: int, reason: str) -> None:
        if self.close_sent or self.transport is None or self.transport.is_closing():
            return
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            # The peer's close frame came in the same read: websockets answers it, and
            # handle_close hands the disconnect to the app.
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.writable.set()
        # A peer that is not reading may never answer the close: give a slow reader a few
        # seconds to reach the close frame behind its backlog, then let go of the socket.
        loop = asyncio.get_running_loop()
        self.close_timer = loop.call_later(CLOSE_GRACE, self.transport.abort)

    # Backpressure on reading ----------------------------------------------------------------

    def pause_writing(self) -> None:
        """The write buffer passed its high-water mark: stop reading, and start the clock.

        A peer that does not read must not make us write either: every ping it sends would
        otherwise add a pong to a buffer that never drains. Reading resumes with writing.
        """
        super().pause_writing()
        self.transport.pause_reading()
        if self.slow_consumer_timeout is not None and self._slow_timer is None:
            self._slow_timer = self.loop.call_later(
                self.slow_consumer_timeout, self._drop_slow_consumer
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        self._pings_while_blocked = 0
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None
        if not self.read_paused:  # uvicorn's own pause (ASGI queue) still holds, if any
            self.transport.resume_reading()
        pong, self._held_pong = self._held_pong, None
        if pong is not None and not self.close_sent and not self.transport.is_closing():
            self._write_pong(pong)

    def _drop_slow_consumer(self) -> None:
        """Above high water for ``slow_consumer_timeout``: the peer is gone in all but name.

        Aborted rather than closed (a close waits for the buffer to drain), so the room sees
        a drop: the place goes into resume grace and the host role moves on.
        """
        self._slow_timer = None
        if not self.disconnected:
            self.slow_consumer_dropped = True
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None
        super().connection_lost(exc)

    def keepalive_timeout(self) -> None:
        """uvicorn closes gently, which waits for the write buffer to drain: a peer that
        stopped reading never lets it. Give it one more timeout to take the close frame."""
        super().keepalive_timeout()
        if not self.disconnected and self.close_timer is None:
            grace = min(CLOSE_GRACE, self.ping_timeout or CLOSE_GRACE)
            self.close_timer = self.loop.call_later(grace, self.transport.abort)

    # Pings ----------------------------------------------------------------------------------

    def _answer_ping(self, payload: bytes) -> None:
        """While the buffer is above high water one pong waits, for the latest ping only
        (RFC 6455 section 5.5.3 allows it): a ping flood cannot grow the buffer."""
        if self.writable.is_set():
            self._write_pong(payload)
            return
        self._held_pong = payload
        self._count_blocked_ping()

    def _write_pong(self, payload: bytes) -> None:
        self.conn.send_pong(payload)
        self.transport.write(b"".join(self.conn.data_to_send()))

    def handle_ping(self) -> None:
        """websockets' path (before the fast reader, or with compression): its pongs are
        bounded by the paused reading; a peer that keeps pinging regardless is closed."""
        if not self.writable.is_set():
            self._count_blocked_ping()
        super().handle_ping()

    def _count_blocked_ping(self) -> None:
        self._pings_while_blocked += 1
        if self._pings_while_blocked > PING_FLOOD_LIMIT and not self.close_sent:
            self.failed_code = 1008  # a policy close: the place ends (leave error)
            self.close_now(1008, "ping flood while not reading")
