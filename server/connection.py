"""One client connection: decode and dispatch what it sends; own its outbox's writer task.

``handle_frame`` is synchronous on purpose: decoding, rate limiting and routing a message to
its room never await, so one client's message cannot wait on another client's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocketDisconnect

import tickrelay.protocol.messages as m
from tickrelay.protocol import (
    CloseCode,
    Codec,
    ErrorCode,
    Event,
    Input,
    LeaveReason,
    MessageError,
    Ping,
    ProtocolError,
    now_ms,
    parse_client_message,
)
from tickrelay.server.outbox import Outbox, PeerGone
from tickrelay.server.ratelimit import FloodGuard, TokenBucket
from tickrelay.server.settings import Settings
from tickrelay.server.tasks import Tasks
from tickrelay.server.transport import TransportHandle
from tickrelay.server.wire import Encoded, StateFrame, Wire

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from tickrelay.server.room import Member, Room

log = logging.getLogger("tickrelay.connection")

# How a connection that the server closed ends its place (contract section 2).
_END_BY_CODE: dict[int, LeaveReason | None] = {
    CloseCode.NORMAL: LeaveReason.LEFT,
    CloseCode.KICKED: LeaveReason.KICKED,
    CloseCode.NO_ROOM: LeaveReason.CLOSED,
    CloseCode.POLICY: LeaveReason.ERROR,
    CloseCode.TOO_LARGE: LeaveReason.ERROR,
    CloseCode.BAD_REQUEST: LeaveReason.ERROR,
}


class Connection:
    """A joined WebSocket: its outbox, its rate limits, and the place it holds in a room."""

    def __init__(
        self,
        websocket: WebSocket,
        codec: Codec,
        settings: Settings,
        handle: TransportHandle | None,
        tasks: Tasks,
    ) -> None:
        self.websocket: WebSocket | None = websocket
        self.codec = codec
        self.handle = handle
        self.room: Room | None = None
        self.member: Member | None = None
        self.close_code: int | None = None
        direct = handle.write_frame if handle is not None and handle.can_write_frames else None
        self.outbox = Outbox(
            codec,
            self._send,
            settings.reliable_queue_messages,
            settings.reliable_queue_bytes,
            tasks.spawn,
            direct,
        )
        now = time.monotonic()
        self._inputs = TokenBucket(settings.input_rate, settings.input_burst, now)
        self._others = TokenBucket(settings.event_rate, settings.event_burst, now)
        self._flood = FloodGuard(settings.flood_close_after)
        self._kind = "bytes" if codec.binary else "text"
        self._stopped_writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    # Outgoing ----------------------------------------------------------------------------

    async def _send(self, data: Encoded) -> None:
        send = self.handle.send if self.handle is not None else self.websocket.send  # type: ignore[union-attr]
        try:
            await send({"type": "websocket.send", self._kind: data})
        except (OSError, RuntimeError, WebSocketDisconnect) as exc:
            # uvicorn's ClientDisconnected is an OSError; Starlette raises RuntimeError or
            # WebSocketDisconnect for a send after the close: the peer is gone either way.
            raise PeerGone from exc

    def push_reliable(self, wire: Wire) -> None:
        if self.close_code is None and not self.outbox.push_reliable(wire):
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: reliable queue overflowed")

    def push_state(self, frame: StateFrame) -> None:
        if self.close_code is None:
            self.outbox.push_state(frame)

    def send_error(self, code: ErrorCode, msg: str, ref: int | str | None = None) -> None:
        self.push_reliable(Wire(m.error(code.value, msg, ref)))

    @property
    def queued_bytes(self) -> int:
        """What the server holds for this client: outbox plus the transport's write buffer."""
        buffered = self.handle.buffered if self.handle is not None else 0
        return self.outbox.queued_bytes + buffered

    # Closing -----------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close now, whatever is still queued; safe to call from any room callback."""
        if self.close_code is not None:
            return
        self.close_code = code
        self._stopped_writer = self.outbox.close()
        if self.handle is not None:
            self.handle.close_now(code, reason)
        else:
            self._closer = asyncio.get_running_loop().create_task(self._close_asgi(code, reason))

    async def _close_asgi(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(code, reason), 2.0)  # type: ignore[union-attr]

    def end_reason(self, disconnect_code: int | None) -> LeaveReason | None:
        """How the place ends after this connection: None is a drop (resume grace)."""
        if self.close_code is not None:
            return _END_BY_CODE.get(self.close_code)
        failed = self.handle.failed_code if self.handle is not None else disconnect_code
        if failed in (CloseCode.TOO_LARGE, CloseCode.BAD_REQUEST, CloseCode.POLICY):
            return LeaveReason.ERROR
        return None

    def release(self) -> None:
        """The connection is gone: stop its writer (the task owner awaits it)."""
        self.outbox.close()

    async def finish(self) -> None:
        """Cancel and await every task this connection started."""
        writer = self.outbox.close() or self._stopped_writer
        for task in (writer, self._closer):
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # Incoming ----------------------------------------------------------------------------

    async def serve(self) -> int | None:
        """Read frames until the connection ends; returns the disconnect code."""
        receive = self.websocket.receive  # type: ignore[union-attr]
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return message.get("code")
            if self.close_code is not None:
                continue
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
            self.handle_frame(data)

    def handle_frame(self, data: bytes | str) -> None:
        try:
            raw = self.codec.decode(data)
        except ProtocolError as exc:
            self.close(exc.code, exc.reason)
            return
        kind = raw["t"]
        if kind != "leave" and not self._within_rate(kind, raw):
            return
        try:
            message = parse_client_message(raw)
        except MessageError as exc:
            self.send_error(exc.code, exc.msg, exc.ref)
            return
        self.dispatch(message)

    def _within_rate(self, kind: str, raw: dict[str, Any]) -> bool:
        now = time.monotonic()
        bucket = self._inputs if kind == "input" else self._others
        if bucket.take(now):
            return True
        tell, flooding = self._flood.refused(now)
        if flooding:
            self.close(CloseCode.POLICY, "rate limit exceeded for too long")
        elif tell:
            seq = raw.get("seq")
            ref = seq if kind == "input" and type(seq) is int else kind
            self.send_error(ErrorCode.RATE_LIMITED, "slow down", ref)
        return False

    def dispatch(self, message: Any) -> None:
        room, member = self.room, self.member
        if room is None or member is None or member.conn is not self:
            return
        if isinstance(message, Input):
            room.receive_input(member, message)
        elif isinstance(message, Event):
            room.receive_event(member, message)
        elif isinstance(message, Ping):
            self.push_reliable(Wire(m.pong(message.id, now_ms(), message.ct)))
        else:
            room.leave(member)
            self.close(CloseCode.NORMAL, "left")
