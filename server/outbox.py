"""Per-connection outbox: a latest-wins state slot, a bounded reliable queue, one writer.

A slow client must cost only its own frames. State messages replace each other in a single
slot (a client that falls behind skips ticks and then gets a snap, or a delta from the base
it really holds); reliable messages wait in a bounded queue whose overflow closes the client
with 4011. The writer awaits only its own connection's transport.

The writer task exists only while something waits: a client that keeps up is written to
directly, and thousands of idle connections cost no task, frame or event each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tickrelay.protocol import Codec
from tickrelay.server.wire import Encoded, StateFrame, Wire

Sender = Callable[[Encoded], Awaitable[None]]
DirectWriter = Callable[[bytes], bool]
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class PeerGone(Exception):
    """Raised by a sender whose connection is already gone: writing ends quietly.

    A client that vanishes while its writer waits is an ordinary end, not a task failure;
    the connection's disconnect handler decides what happens to its seat.
    """


class Outbox:
    """What one connection has yet to receive, and the task that writes it."""

    def __init__(
        self,
        codec: Codec,
        send: Sender,
        max_messages: int,
        max_bytes: int,
        spawn: Spawn,
        direct: DirectWriter | None = None,
    ) -> None:
        self.codec = codec
        self._send = send
        self._spawn = spawn
        self._direct = direct
        self.writer: asyncio.Task[None] | None = None
        self._closed = False
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._reliable: deque[Wire] = deque()
        self.reliable_bytes = 0
        self._state: StateFrame | None = None
        self.have_tick: int | None = None
        self.inflight_bytes = 0
        self.sent_messages = 0
        self.sent_states = 0
        self.skipped_states = 0
        self.overflowed = False

    @property
    def reliable_len(self) -> int:
        return len(self._reliable)

    @property
    def queued_bytes(self) -> int:
        """Bytes this connection holds on the server above the transport's own buffer."""
        state = self._state
        pending_state = 0
        if state is not None:
            wire = state.wire_for(self.have_tick)
            pending_state = len(wire.encode(self.codec))
        return self.reliable_bytes + pending_state + self.inflight_bytes

    def push_reliable(self, wire: Wire) -> bool:
        """Queue a reliable message; False past the queue's bound (the caller closes 4011)."""
        if self.overflowed:
            return False
        if self._idle and self._direct(wire.framed(self.codec)):  # type: ignore[misc]
            self.sent_messages += 1
            return True
        data = wire.encode(self.codec)
        size = len(data)
        full = len(self._reliable) >= self._max_messages
        if full or self.reliable_bytes + size > self._max_bytes:
            self.overflowed = True
            return False
        self._reliable.append(wire)
        self.reliable_bytes += size
        self._start_writer()
        return True

    def take_reliable(self) -> list[Wire]:
        """Hand over what was not written yet (a takeover carries it to the new connection)."""
        pending = list(self._reliable)
        self._reliable.clear()
        self.reliable_bytes = 0
        return pending

    @property
    def _idle(self) -> bool:
        """Nothing queued or in flight: a new message may skip the writer task entirely."""
        return (
            self._direct is not None
            and self.writer is None
            and not self._reliable
            and self._state is None
        )

    def push_state(self, frame: StateFrame) -> None:
        """Latest wins: a frame still waiting is replaced, never queued behind.

        Ticks only grow per client, whoever produced the frame: one no newer than what the
        client has is dropped here, where every frame to a client passes. After a takeover
        the new owner's first frame is its checkpointed one, which a member that stayed
        connected may have had already; its next frame then arrives as a delta or a snap."""
        have = self.have_tick
        if have is not None and frame.tick <= have:
            return
        if self._idle:
            wire = frame.wire_for(have)
            if self._direct(wire.framed(self.codec)):  # type: ignore[misc]
                self.have_tick = frame.tick
                self.sent_messages += 1
                self.sent_states += 1
                return
        if self._state is not None:
            self.skipped_states += 1
        self._state = frame
        self._start_writer()

    def _start_writer(self) -> None:
        if self.writer is None and not self._closed:
            self.writer = self._spawn(self._write(), "writer")

    def close(self) -> asyncio.Task[None] | None:
        """Stop writing for good; the writer still running (cancelled), for its owner to await."""
        self._closed = True
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.cancel()
        return writer

    async def _write(self) -> None:
        """Write until nothing waits, then end. Reliable messages first, then the newest state."""
        send = self._send
        reliable = self._reliable
        try:
            await self._drain(send, reliable)
        except PeerGone:
            self._closed = True
        finally:
            self.inflight_bytes = 0
            if self.writer is asyncio.current_task():
                self.writer = None

    async def _drain(self, send: Sender, reliable: deque[Wire]) -> None:
        while reliable or self._state is not None:
            while reliable:
                data = reliable.popleft().encode(self.codec)
                size = len(data)
                self.reliable_bytes -= size
                self.inflight_bytes = size
                await send(data)
                self.sent_messages += 1
            frame = self._state
            if frame is not None:
                self._state = None
                data = frame.wire_for(self.have_tick).encode(self.codec)
                self.inflight_bytes = len(data)
                await send(data)
                self.have_tick = frame.tick
                self.sent_messages += 1
                self.sent_states += 1
            self.inflight_bytes = 0
