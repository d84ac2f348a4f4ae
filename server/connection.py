"""One client connection: decode and dispatch what it sends; own its outbox's writer task.

``handle_frame`` is synchronous on purpose: decoding, rate limiting and routing a message to
its room never await, so one client's message cannot wait on another client's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from enum import IntEnum
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
from tickrelay.server.ratelimit import BUDGET_EXEMPT_SIZE, ByteBudget, FloodGuard, TokenBucket
from tickrelay.server.settings import Settings
from tickrelay.server.tasks import Tasks
from tickrelay.server.wire import Encoded, StateFrame, Wire

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from tickrelay.server.links import RoomLink
    from tickrelay.server.members import Member
    from tickrelay.server.transport import TransportHandle

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


class ConnectionState(IntEnum):
    """Ordered: a connection only moves forward, and ``< CLOSING`` is "still writable"."""

    OPEN = 0  # accepted, joining
    JOINED = 1  # holds a place: messages go to its room
    CLOSING = 2  # the server closed it (``close_code``); nothing more is written or read
    CLOSED = 3  # gone


OPEN = ConnectionState.OPEN
JOINED = ConnectionState.JOINED
CLOSING = ConnectionState.CLOSING
CLOSED = ConnectionState.CLOSED


class Connection:
    """A WebSocket member of a room: its outbox, its rate limits, the place it holds.

    Implements ``MemberLink`` for its room and talks to the room only through ``RoomLink``.
    """

    # Set by ``joined``, the end of the join path; read only once JOINED.
    room: RoomLink
    member: Member

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
        self.state = OPEN
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
        self._bytes = ByteBudget(settings.message_bytes_rate, settings.message_bytes_burst, now)
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
        if self.state < CLOSING and not self.outbox.push_reliable(wire):
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: reliable queue overflowed")

    def push_state(self, frame: StateFrame) -> None:
        if self.state < CLOSING:
            self.outbox.push_state(frame)

    def send_error(self, code: ErrorCode, msg: str, ref: int | str | None = None) -> None:
        self.push_reliable(Wire(m.error(code.value, msg, ref)))

    def take_reliable(self) -> list[Wire]:
        return self.outbox.take_reliable()

    @property
    def queued_bytes(self) -> int:
        """What the server holds for this client: outbox plus the transport's write buffer."""
        buffered = self.handle.buffered if self.handle is not None else 0
        return self.outbox.queued_bytes + buffered

    def stats(self) -> dict[str, int]:
        outbox = self.outbox
        return {
            "reliable_queued": outbox.reliable_len,
            "sent_messages": outbox.sent_messages,
            "sent_states": outbox.sent_states,
            "skipped_states": outbox.skipped_states,
        }

    # Joining and ending ------------------------------------------------------------------

    def joined(self, room: RoomLink, member: Member) -> None:
        """The join path's last step: from here the connection's messages go to ``room``."""
        self.room = room
        self.member = member
        if self.state is OPEN:  # not closed during the join (a carried backlog overflowed)
            self.state = JOINED

    def ended(self, disconnect_code: int | None) -> None:
        """The connection is gone: its room decides what happens to the place."""
        self.room.connection_ended(self.member, self, self.end_reason(disconnect_code))

    # Closing -----------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close now, whatever is still queued; safe to call from any room callback."""
        if self.state >= CLOSING:
            return
        self.state = CLOSING
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
        if self.close_code is not None:  # the server closed it
            return _END_BY_CODE.get(self.close_code)
        failed = self.handle.failed_code if self.handle is not None else disconnect_code
        if failed in (CloseCode.TOO_LARGE, CloseCode.BAD_REQUEST, CloseCode.POLICY):
            return LeaveReason.ERROR
        return None

    def release(self) -> None:
        """The connection is gone: stop its writer (the task owner awaits it)."""
        self.state = CLOSED
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
            if self.state >= CLOSING:
                continue
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
            self.handle_frame(data)

    def handle_frame(self, data: bytes | str) -> None:
        # The byte budget refuses a frame before it costs a decode, so the error has no ref.
        size = len(data)
        budget = self._bytes
        left = budget.tokens - size
        if left >= 0.0:  # ByteBudget.spend, inlined: one subtraction per frame
            budget.tokens = left
        elif size > BUDGET_EXEMPT_SIZE and not budget.take(time.monotonic(), size):
            self._refuse(time.monotonic(), None)
            return
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
        seq = raw.get("seq")
        self._refuse(now, seq if kind == "input" and type(seq) is int else kind)
        return False

    def _refuse(self, now: float, ref: int | str | None) -> None:
        """A message over a rate limit or the byte budget: tell at most once a second, and
        close a client that keeps flooding (contract section 4)."""
        tell, flooding = self._flood.refused(now)
        if flooding:
            self.close(CloseCode.POLICY, "rate limit exceeded for too long")
        elif tell:
            self.send_error(ErrorCode.RATE_LIMITED, "slow down", ref)

    def dispatch(self, message: Any) -> None:
        if self.state is not JOINED:
            return
        if isinstance(message, Input):
            self.room.receive_input(self.member, message)
        elif isinstance(message, Event):
            self.room.receive_event(self.member, message)
        elif isinstance(message, Ping):
            self.push_reliable(Wire(m.pong(message.id, now_ms(), message.ct)))
        else:
            self.room.leave(self.member)
            self.close(CloseCode.NORMAL, "left")
