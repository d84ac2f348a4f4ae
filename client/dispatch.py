"""What the client knows from the server: decoding, dispatch, counters and the message queue.

Every decoded message is dispatched *before* it is queued, so when a consumer sees a
``snap`` the mirror already contains it (and maybe later states: the mirror is always the
latest state received, not the state at the consumer's position in the queue). Nothing
here awaits: it runs on the reader task, which must never stop reading (the server treats
a client that does not read as a slow consumer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tickrelay.protocol import Codec, ProtocolError, StateMirror

__all__ = ["STATE_TYPES", "Dispatcher", "Message", "frame_len"]

log = logging.getLogger("tickrelay.client")

STATE_TYPES = frozenset({"snap", "delta"})

#: A decoded message: a map with a string ``t``.
Message = dict[str, Any]


def frame_len(frame: bytes | str) -> int:
    """Payload size as sent on the wire (UTF-8 for text frames)."""
    if isinstance(frame, bytes) or frame.isascii():
        return len(frame)
    return len(frame.encode("utf-8", "surrogatepass"))


class Dispatcher:
    """Decodes frames and routes each message to the state it updates, then queues it.

    Attributes are the client's public view of the server (``RoomClient`` shows them):
    the ``welcome`` fields, ``host``, the ``mirror`` and the counters documented there.
    """

    def __init__(
        self,
        room_id: str,
        *,
        spectate: bool,
        keep_messages: bool,
        on_pong: Callable[[Message], None],
    ) -> None:
        # From the welcome (section 2).
        self.pid: str | None = None
        self.room_id = room_id
        self.host: str | None = None
        self.rate: int | None = None
        self.resume_token: str | None = None
        self.spectator = spectate
        self.resumed = False
        self.welcome: Message | None = None

        self.mirror = StateMirror()
        self.mirror_errors: list[Exception] = []
        self.decode_errors: list[ProtocolError] = []

        self.messages_received = 0
        self.bytes_received = 0
        self.state_messages = 0
        self.skipped_ticks = 0
        self.tick_gaps = 0

        self.keep_messages = keep_messages
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        #: Optional synchronous hook called with every decoded message after dispatch.
        self.on_message: Callable[[Message], None] | None = None
        self._on_pong = on_pong
        self._last_state_tick: int | None = None

    def decode(self, codec: Codec, frame: bytes | str) -> Message:
        """Count and decode one frame; an undecodable one is recorded, then re-raised."""
        self.bytes_received += frame_len(frame)
        try:
            msg: Message = codec.decode(frame)
        except ProtocolError as exc:
            self.decode_errors.append(exc)
            raise
        return msg

    def new_connection(self) -> None:
        """Tick gaps are measured per connection: forget the last tick seen."""
        self._last_state_tick = None

    def deliver(self, msg: Message) -> None:
        """Dispatch one decoded message, queue it for consumers, call the hook."""
        self.messages_received += 1
        t = msg.get("t")
        if t in STATE_TYPES:
            self._on_state(msg)
        elif t == "welcome":
            self._on_welcome(msg)
        elif t == "host":
            self.host = msg.get("pid")
        elif t == "pong":
            self._on_pong(msg)
        if self.keep_messages:
            self.messages.put_nowait(msg)
        self._call_hook(msg)

    def drain(self) -> list[Message]:
        """Return and remove every message queued so far, without waiting."""
        out: list[Message] = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except asyncio.QueueEmpty:
                return out

    def _call_hook(self, msg: Message) -> None:
        hook = self.on_message
        if hook is None:
            return
        try:
            hook(msg)
        except Exception:
            log.exception("on_message hook failed")

    def _on_welcome(self, msg: Message) -> None:
        self.welcome = msg
        self.pid = msg.get("pid", self.pid)
        self.room_id = msg.get("room", self.room_id)
        self.host = msg.get("host")
        self.rate = msg.get("rate", self.rate)
        self.resume_token = msg.get("resume", self.resume_token)
        self.spectator = bool(msg.get("spectator", self.spectator))
        self.resumed = bool(msg.get("resumed", False))

    def _on_state(self, msg: Message) -> None:
        self.state_messages += 1
        self._count_tick(msg.get("tick"))
        try:
            self.mirror.apply(msg)
        except Exception as exc:  # MirrorError, or a malformed state message
            # Recorded, not raised: one bad delta must not kill the reader; tests assert
            # on mirror_errors, and the next snap repairs the mirror.
            self.mirror_errors.append(exc)
            log.warning("state message not applied to mirror: %s", exc)

    def _count_tick(self, tick: Any) -> None:
        if not isinstance(tick, int) or isinstance(tick, bool):
            return
        last = self._last_state_tick
        if last is not None and tick - last > 1:
            self.skipped_ticks += tick - last - 1
            self.tick_gaps += 1
        self._last_state_tick = tick
