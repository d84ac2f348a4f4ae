"""The client session's lifecycle: one explicit state, the current connection, and wake-ups.

A session spans every WebSocket connection that auto-reconnect opens for one seat. Its
state is one enum rather than a set of flags (closing, leaving, fatal, reconnecting,
finished) because the flags could contradict each other and every check had to combine
them; with one state each question ("may we reconnect?", "is it over?") is one comparison,
and an impossible move is an error instead of a silent mix. No I/O here: the transitions
are unit-tested without sockets.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Generic, Protocol, TypeVar

from .errors import ClientClosed

__all__ = ["Session", "SessionState"]


class SessionState(enum.Enum):
    """Where a client session is in its life."""

    #: Before the first ``welcome``.
    CONNECTING = "connecting"
    #: Joined, a connection is open; a reconnectable drop leads to ``RECONNECTING``.
    OPEN = "open"
    #: Dropped, trying to get the seat back (no connection).
    RECONNECTING = "reconnecting"
    #: Ending on purpose (``close()``, ``leave()``, or a server that broke the framing):
    #: the connection, if any, is being closed and no reconnect follows.
    CLOSING = "closing"
    #: Over for good.
    CLOSED = "closed"


_MOVES: dict[SessionState, frozenset[SessionState]] = {
    SessionState.CONNECTING: frozenset(
        {SessionState.OPEN, SessionState.CLOSING, SessionState.CLOSED}
    ),
    SessionState.OPEN: frozenset(
        {SessionState.RECONNECTING, SessionState.CLOSING, SessionState.CLOSED}
    ),
    SessionState.RECONNECTING: frozenset(
        {SessionState.OPEN, SessionState.CLOSING, SessionState.CLOSED}
    ),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


class Closable(Protocol):
    """What the session reads of a connection that ended (a websockets connection)."""

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...


C = TypeVar("C", bound=Closable)


class Session(Generic[C]):
    """The state, the current connection and how the last one ended, plus waiters.

    Waiters are woken on every change of state or connection and on every delivered
    message (:meth:`notify`), so ``recv``, ``wait_closed`` and senders waiting for a
    reconnect all wait on one mechanism.
    """

    def __init__(self) -> None:
        self.state = SessionState.CONNECTING
        #: The open, joined connection (None while connecting, reconnecting, after close).
        self.connection: C | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.close_history: list[tuple[int | None, str | None]] = []
        self._waiters: set[asyncio.Future[None]] = set()

    def move(self, to: SessionState) -> None:
        """Enter state ``to``; a move the lifecycle does not allow is a bug, so it raises."""
        if to not in _MOVES[self.state]:
            raise RuntimeError(f"client session cannot go from {self.state.name} to {to.name}")
        self.state = to
        self.notify()

    def end(self) -> None:
        """Ending on purpose: no reconnect follows. Idempotent once ending or over."""
        if self.state not in (SessionState.CLOSING, SessionState.CLOSED):
            self.move(SessionState.CLOSING)

    def attach(self, connection: C) -> None:
        """A freshly joined connection becomes the current one."""
        self.connection = connection
        self.close_code = None
        self.close_reason = None
        self.move(SessionState.OPEN)

    def detach(self, connection: C) -> None:
        """The current connection ended: record how (``1006`` without a close frame)."""
        # int(): websockets reports 1006 as its own CloseCode enum member.
        code = int(connection.close_code) if connection.close_code is not None else 1006
        self.connection = None
        self.record_end(code, connection.close_reason)
        self.close_history.append((code, connection.close_reason))

    def record_end(self, code: int | None, reason: str | None) -> None:
        """How the last attempt ended (also a refused or failed reconnect attempt)."""
        self.close_code = code
        self.close_reason = reason
        self.notify()

    def closed_error(self) -> ClientClosed:
        return ClientClosed(self.close_code, self.close_reason)

    def notify(self) -> None:
        """Wake every coroutine waiting in :meth:`wait_change`."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_change(self) -> None:
        """Wait for the next message, connection change or state change. A future per
        waiter (rather than an Event) needs no clearing, so no wake-up is ever lost."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await fut
        finally:
            self._waiters.discard(fut)

    async def wait_closed(self) -> None:
        while self.state is not SessionState.CLOSED:
            await self.wait_change()

    async def wait_connection(self, stale: C | None = None) -> C:
        """Return the open connection, waiting while reconnecting.

        ``stale`` is a connection a send just failed on: wait for a different one, because
        the reader may not have noticed the close yet. Raises :class:`ClientClosed` when
        the session is over for good.
        """
        while True:
            connection = self.connection
            if connection is not None and connection is not stale:
                return connection
            if self.state is SessionState.CLOSED:
                raise self.closed_error()
            await self.wait_change()
