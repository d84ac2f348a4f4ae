"""The asyncio room client: the facade composing the client's parts.

One :class:`RoomClient` is one seat (or spectator place) in one room, across however many
WebSocket connections auto-reconnect needs. The parts, one job each:

* :mod:`.options`: every option, defined once (:class:`~.options.ClientOptions`).
* :mod:`.handshake`: open a connection and read its ``welcome``, or raise the refusal.
* :mod:`.dispatch`: decode, dispatch (mirror, welcome fields, host), count, queue.
* :mod:`.session`: the lifecycle state, the current connection, wake-ups for waiters.
* :mod:`.reconnect`: backoff, resume, a fresh join after ``4012``.
* :mod:`.pinger`: ``ping``/``pong``, round-trip time and clock offset.

Design choices, and why:

* **One background task per client** reads the socket and hands every frame to the
  dispatcher. It must never stop reading while the connection lives: the server treats a
  client that does not read as a slow consumer, so anything slow (tests, game logic)
  consumes the queue instead. The same task runs the reconnect loop, so :meth:`close` has
  exactly one task to cancel and await, and nothing is ever left pending.
* **Every decoded message is queued** (unbounded ``asyncio.Queue`` in
  :attr:`RoomClient.messages`), the first ``welcome`` and the ``welcome`` of every reconnect
  included, for :meth:`~RoomClient.recv` / :meth:`~RoomClient.wait_for`. Set
  ``keep_messages=False`` when nobody consumes the queue (load tester, bots), or memory
  grows without bound.
* **Refusals are exceptions at join time**: :func:`connect` raises
  :class:`~tickrelay.client.errors.ConnectRefused` unless the first message is ``welcome``.
* **``close()`` is a drop, ``leave()`` is a leave**: close sends close code 1000 without
  ``leave``, so the server keeps the seat for the resume grace (contract section 2).
* **Auto-reconnect** is off by default, so tests see closes as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tickrelay.protocol import CloseCode, Codec, ProtocolError, StateMirror

from .dispatch import STATE_TYPES, Dispatcher, Message
from .errors import ClientClosed
from .forward import Forward
from .handshake import CLIENT_PROTOCOL_ERROR, Joined, join
from .options import ClientOptions, CodecName, OnReconnect
from .pinger import Pinger
from .reconnect import Reconnector
from .session import Session, SessionState
from .urls import build_url

__all__ = ["CodecName", "OnReconnect", "RoomClient", "connect", "connect_ctx"]

log = logging.getLogger("tickrelay.client")


class RoomClient:
    """A connection to one tickrelay room; create it with :func:`connect`.

    Public attributes (read them, do not assign them, except ``keep_messages``,
    ``on_reconnect`` and ``on_message``):

    * From the last ``welcome``: ``pid``, ``room_id``, ``host`` (also updated by ``host``
      messages), ``rate``, ``resume_token``, ``spectator``, ``resumed``, ``welcome`` (the dict).
    * ``mirror``: a ``tickrelay.protocol.StateMirror`` fed with every ``snap``/``delta``, so
      ``client.mirror.players`` is the local copy of the room state. A delta that does not
      fit (``MirrorError``) is appended to ``mirror_errors`` and still delivered.
    * ``seq``: the ``seq`` of the last input sent (0 before the first).
    * ``state``: the session's :class:`~.session.SessionState`; ``connected``,
      ``reconnecting`` and ``closed`` are read from it.
    * ``close_code`` / ``close_reason``: how the last connection ended (None while a
      connection is open; ``1006`` when it ended without a close frame). ``close_history``
      lists ``(code, reason)`` of every connection that ended.
    * ``rtt`` (seconds) and ``clock_offset_ms`` (server clock minus local clock) from the
      last :meth:`ping`; None before the first.
    * Counters: ``messages_received``, ``bytes_received`` (payload bytes, all frames),
      ``state_messages`` (snap + delta), ``skipped_ticks`` (tick numbers never seen between
      consecutive state messages of one connection: idle ticks that sent nothing count too,
      as do ticks skipped by backpressure), ``tick_gaps`` (how many jumps of more than one
      tick), ``reconnects``, ``resume_failures`` (``4012`` answers that forced a fresh join).
    * ``decode_errors``: frames from the server the codec refused (the client then closes
      with 1002 and does not reconnect, because a server that breaks framing cannot be
      trusted to resume either).
    * ``messages``: the ``asyncio.Queue`` behind :meth:`recv`; ``keep_messages`` (default
      True) says whether decoded messages are put on it at all.
    * ``options``: the :class:`~.options.ClientOptions` the client was created with.
    """

    pid: Forward[str | None] = Forward("_dispatcher")
    room_id: Forward[str] = Forward("_dispatcher")
    host: Forward[str | None] = Forward("_dispatcher")
    rate: Forward[int | None] = Forward("_dispatcher")
    resume_token: Forward[str | None] = Forward("_dispatcher")
    spectator: Forward[bool] = Forward("_dispatcher")
    resumed: Forward[bool] = Forward("_dispatcher")
    welcome: Forward[Message | None] = Forward("_dispatcher")
    mirror: Forward[StateMirror] = Forward("_dispatcher")
    mirror_errors: Forward[list[Exception]] = Forward("_dispatcher")
    decode_errors: Forward[list[ProtocolError]] = Forward("_dispatcher")
    messages_received: Forward[int] = Forward("_dispatcher")
    bytes_received: Forward[int] = Forward("_dispatcher")
    state_messages: Forward[int] = Forward("_dispatcher")
    skipped_ticks: Forward[int] = Forward("_dispatcher")
    tick_gaps: Forward[int] = Forward("_dispatcher")
    messages: Forward[asyncio.Queue[Message]] = Forward("_dispatcher")
    keep_messages: Forward[bool] = Forward("_dispatcher", writable=True)
    #: Optional synchronous hook called with every decoded message after dispatch
    #: (e.g. the load tester measuring latency from ``st``). Must be quick: it runs
    #: on the reader task. Exceptions are logged and ignored.
    on_message: Forward[Callable[[Message], None] | None] = Forward("_dispatcher", writable=True)
    close_code: Forward[int | None] = Forward("_session")
    close_reason: Forward[str | None] = Forward("_session")
    close_history: Forward[list[tuple[int | None, str | None]]] = Forward("_session")
    rtt: Forward[float | None] = Forward("_pinger")
    clock_offset_ms: Forward[float | None] = Forward("_pinger")
    reconnects: Forward[int] = Forward("_reconnector")
    resume_failures: Forward[int] = Forward("_reconnector")

    def __init__(
        self, base_url: str, room_id: str, options: ClientOptions | None = None, **kwargs: Any
    ) -> None:
        """Store the options (``options``, then the :class:`ClientOptions` fields given as
        keywords on top); no I/O. Prefer :func:`connect`, which also joins."""
        self.options = ClientOptions.build("RoomClient", options, kwargs)
        # Fail fast on a malformed base URL, before any socket is opened.
        build_url(base_url, room_id)
        self._base_url = base_url
        self._session: Session[ClientConnection] = Session()
        self._pinger = Pinger()
        self._reconnector = Reconnector(self.options)
        self._dispatcher = Dispatcher(
            room_id,
            spectate=self.options.spectate,
            keep_messages=self.options.keep_messages,
            on_pong=self._pinger.on_pong,
        )
        self.codec: Codec | None = None
        self.seq: int = self.options.initial_seq
        self.on_reconnect: OnReconnect | None = self.options.on_reconnect
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> SessionState:
        """Where the session is in its life (see :class:`~.session.SessionState`)."""
        return self._session.state

    @property
    def connected(self) -> bool:
        """True while joined with an open connection that may be used freely (False while
        reconnecting, and from ``close()``/``leave()`` on)."""
        return self._session.state is SessionState.OPEN

    @property
    def closed(self) -> bool:
        """True once the client is over for good (no reconnect will follow)."""
        return self._session.state is SessionState.CLOSED

    @property
    def reconnecting(self) -> bool:
        """True between a dropped connection and the next welcome (or giving up)."""
        return self._session.state is SessionState.RECONNECTING

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol of the current (or last) connection."""
        return self.codec.subprotocol if self.codec is not None else None

    @property
    def acked_seq(self) -> int:
        """The last input ``seq`` the server applied for us, from the mirror's acks."""
        if self.pid is None:
            return 0
        ack = self.mirror.acks.get(self.pid, 0)
        return ack if isinstance(ack, int) else 0

    def server_now_ms(self) -> float:
        """Estimated server wall clock (ms) using the offset from the last :meth:`ping`."""
        return self._pinger.server_now_ms()

    def __repr__(self) -> str:
        return f"<RoomClient room={self.room_id!r} pid={self.pid!r} {self.state.value}>"

    # ------------------------------------------------------------------ lifecycle

    async def _start(self, resume: str | None) -> None:
        """Join (raising ``ConnectRefused`` on refusal) and start the reader task."""
        try:
            joined = await self._join(resume)
        except BaseException:
            self._session.move(SessionState.CLOSED)
            raise
        self._attach(joined)
        self._task = asyncio.create_task(
            self._supervise(), name=f"tickrelay-client:{self.room_id}:{self.pid}"
        )

    async def close(self) -> None:
        """Close the connection with 1000 *without* ``leave`` and stop the reader task.

        The server treats this as a drop: the seat stays for the resume grace and the
        other members get ``away``. Use :meth:`leave` to give the seat up. Idempotent; also
        stops a reconnect in progress. Messages already queued can still be read with
        :meth:`drain`/:meth:`recv`.
        """
        self._session.end()
        ws = self._session.connection
        if ws is not None:
            # Graceful closing handshake, bounded by close_timeout inside websockets.
            await ws.close(CloseCode.NORMAL)
        task = self._task
        if task is None:
            self._finish()
            return
        if task is asyncio.current_task():
            # Called from an on_reconnect callback: the task ends by itself now that the
            # socket is closed and the session is closing; awaiting ourselves would deadlock.
            return
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("client reader task failed", exc_info=task.exception())

    async def __aenter__(self) -> RoomClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ receiving

    async def recv(self, timeout: float | None = 5.0) -> Message:
        """Return the next queued message, waiting up to ``timeout`` seconds.

        Raises ``TimeoutError`` when nothing arrives in time, and :class:`ClientClosed` once
        the queue is empty and the client is over for good (messages received before the
        close are still returned first). With ``keep_messages=False`` nothing is queued.
        """
        async with asyncio.timeout(timeout):
            while True:
                try:
                    return self.messages.get_nowait()
                except asyncio.QueueEmpty:
                    pass
                if self.closed:
                    raise self._session.closed_error()
                await self._session.wait_change()

    async def wait_for(
        self,
        t: str | None = None,
        *,
        timeout: float | None = 5.0,
        where: Callable[[Message], bool] | None = None,
    ) -> Message:
        """Return the first queued message of type ``t`` (any when None) for which
        ``where`` (when given) is true, discarding the messages before it.

        ``timeout`` bounds the whole wait, not each message.
        """
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout=None)
                if t is not None and msg.get("t") != t:
                    continue
                if where is not None and not where(msg):
                    continue
                return msg

    async def next_state(self, timeout: float | None = 5.0) -> Message:
        """Return the next queued ``snap`` or ``delta``, discarding other messages."""
        return await self.wait_for(timeout=timeout, where=lambda m: m.get("t") in STATE_TYPES)

    def drain(self) -> list[Message]:
        """Return and remove every message queued so far, without waiting."""
        return self._dispatcher.drain()

    async def wait_closed(self, timeout: float | None = 5.0) -> int | None:
        """Wait until the client is over for good and return the last close code.

        With auto-reconnect a reconnectable drop is not the end: this waits until a
        close that is not retried (or until reconnecting gives up). Raises
        ``TimeoutError`` after ``timeout`` seconds. Does not consume queued messages.
        """
        async with asyncio.timeout(timeout):
            await self._session.wait_closed()
        return self.close_code

    # ------------------------------------------------------------------ sending

    async def send_raw(self, frame: bytes | str) -> None:
        """Send one frame as is (bytes: binary frame, str: text frame), for tests that
        need frames the codec would never produce."""
        await self._send_frame(frame)

    async def send_message(self, message: Message) -> None:
        """Encode ``message`` with the negotiated codec and send it.

        Raises whatever the codec raises for unencodable values (e.g. NaN with JSON).
        """
        ws = await self._wait_connection()
        assert self.codec is not None  # set together with the connection
        await self._send_frame(self.codec.encode(message), ws)

    async def send_input(self, d: Message, room: Message | None = None) -> int:
        """Send an ``input`` with the next ``seq`` (1, 2, ...) and return that ``seq``.

        ``seq`` is taken before sending and never reused, so it keeps growing across a
        resume, as the server's stale check requires.
        """
        self.seq += 1
        seq = self.seq
        message: Message = {"t": "input", "seq": seq, "d": d}
        if room is not None:
            message["room"] = room
        await self.send_message(message)
        return seq

    async def send_event(self, d: Any, to: list[str] | None = None) -> None:
        """Send an ``event`` to every other member, or only to the pids in ``to``."""
        message: Message = {"t": "event", "d": d}
        if to is not None:
            message["to"] = list(to)
        await self.send_message(message)

    async def ping(self, timeout: float | None = 5.0) -> float:
        """Send a ``ping``, wait for its ``pong`` and return the round-trip time (s).

        Also sets ``rtt`` and ``clock_offset_ms`` (see :class:`~.pinger.Pinger`).
        """
        return await self._pinger.ping(self.send_message, timeout)

    async def leave(self, timeout: float | None = 5.0) -> int | None:
        """Give up the seat: send ``leave``, wait for the server's close and return its
        code (1000 from a conforming server). Never reconnects afterwards."""
        self._session.end()
        try:
            await self.send_message({"t": "leave"})
        except ClientClosed:
            return self.close_code
        return await self.wait_closed(timeout)

    async def _wait_connection(self, stale: ClientConnection | None = None) -> ClientConnection:
        """The open connection, waiting up to ``send_timeout`` while reconnecting."""
        ws = self._session.connection
        if ws is not None and ws is not stale:
            return ws
        async with asyncio.timeout(self.options.send_timeout):
            return await self._session.wait_connection(stale)

    async def _send_frame(self, frame: bytes | str, ws: ClientConnection | None = None) -> None:
        """Send on the current connection; if it closes under us and auto-reconnect is on,
        resend once on the next connection (at-least-once: inputs are deduplicated by
        ``seq`` on the server (``stale``); a rare race may duplicate an event)."""
        if ws is None:
            ws = await self._wait_connection()
        while True:
            try:
                await ws.send(frame)
                return
            except ConnectionClosed:
                if not self.options.auto_reconnect or self.state is SessionState.CLOSING:
                    raise ClientClosed(ws.close_code, ws.close_reason) from None
                ws = await self._wait_connection(stale=ws)

    # ------------------------------------------------------------------ the reader task

    async def _join(self, resume: str | None) -> Joined:
        return await join(self._base_url, self.room_id, self.options, resume, self._dispatcher)

    def _attach(self, joined: Joined) -> None:
        """Make a freshly joined connection the current one and deliver its welcome."""
        self.codec = joined.codec
        self._session.attach(joined.ws)  # wakes senders waiting for a connection
        self._dispatcher.new_connection()
        self._dispatcher.deliver(joined.welcome)
        self._session.notify()

    async def _supervise(self) -> None:
        """The reader task: read the current connection, reconnect when allowed."""
        try:
            while True:
                ws = self._session.connection
                assert ws is not None
                await self._read_guarded(ws)
                self._session.detach(ws)
                if not self._reconnector.wanted(self._session):
                    return
                self._session.move(SessionState.RECONNECTING)
                if not await self._reconnect():
                    return
        finally:
            self._finish()

    async def _read_guarded(self, ws: ClientConnection) -> None:
        try:
            await self._read(ws)
        except Exception:
            # A bug in dispatch must not leave a silent half-dead client.
            log.exception("client reader failed")
            self._session.end()
            await ws.close(CloseCode.INTERNAL)

    async def _read(self, ws: ClientConnection) -> None:
        """Read and deliver frames until the connection closes."""
        assert self.codec is not None
        codec = self.codec
        while True:
            try:
                frame = await ws.recv()
            except ConnectionClosed:
                return
            try:
                msg = self._dispatcher.decode(codec, frame)
            except ProtocolError as exc:
                # A server that breaks framing cannot be trusted to resume either.
                self._session.end()
                log.error("undecodable message from server, closing: %s", exc)
                await ws.close(CLIENT_PROTOCOL_ERROR, "undecodable message")
                return
            self._dispatcher.deliver(msg)
            self._session.notify()

    async def _reconnect(self) -> bool:
        """Rejoin (resume, or afresh after ``4012``); True when joined again."""
        joined = await self._reconnector.rejoin(self.resume_token, self._join, self._session)
        if joined is None:
            return False
        self._attach(joined)
        await self._call_on_reconnect()
        return True

    async def _call_on_reconnect(self) -> None:
        hook = self.on_reconnect
        if hook is None:
            return
        try:
            result = hook(self)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("on_reconnect callback failed")

    def _finish(self) -> None:
        """Mark the client over for good; wake every waiter; fail pending pings."""
        session = self._session
        ws = session.connection
        if ws is not None:
            # The task was cancelled while reading: by close() (the socket is closed
            # already) or by something else such as event loop teardown (abort it then,
            # so no socket leaks). Either way record how the connection ended.
            if ws.close_code is None:
                ws.transport.abort()
            session.detach(ws)
        if session.state is not SessionState.CLOSED:
            session.move(SessionState.CLOSED)
        self._pinger.fail_pending(session.closed_error())


async def connect(
    base_url: str,
    room_id: str,
    options: ClientOptions | None = None,
    *,
    resume: str | None = None,
    **kwargs: Any,
) -> RoomClient:
    """Join room ``room_id`` at ``base_url`` (``ws://host:port``) and return the client
    once its ``welcome`` has arrived.

    The keyword arguments are the fields of :class:`~.options.ClientOptions` (an unknown
    name is a ``TypeError``), applied on top of ``options`` when given. Among them:

    * ``token`` goes into the ``token`` query parameter, or into ``Authorization: Bearer``
      with ``token_in_header=True``. ``spectate=True`` adds ``spectate=1``.
    * ``codec`` picks the subprotocol offered; ``subprotocols`` overrides the whole offer
      (tests: ``[]`` offers none, unknown names provoke a handshake refusal). The codec
      actually used is the one the server chose.
    * ``resume``: a resume token from an earlier ``welcome``; pass ``initial_seq`` (the old
      client's ``seq``) too, because the server refuses a ``seq`` that is not greater than
      the last one it accepted for the player.
    * ``auto_reconnect``: after a close in ``tickrelay.protocol.RECONNECTABLE`` (1006
      included), retry up to ``reconnect_attempts`` times with delays from
      ``backoff_delays(*reconnect_backoff)``, resuming, or joining afresh after ``4012``.
      The initial join is never retried: its refusal is raised.
    * ``max_size``: largest server message accepted (None: no limit, because the contract
      lets a snapshot of a big room exceed any fixed size).
    * ``compression``: permessage-deflate is off by default: the contract does not need
      it, frames are small and compact, and it costs CPU and memory per connection (the
      load tester opens thousands).
    * ``open_timeout`` bounds the TCP + WebSocket handshake and, separately, the wait for
      the first message; ``send_timeout`` bounds how long a send waits for a reconnect.

    Raises :class:`ConnectRefused` when the server refuses (close code, or HTTP status),
    ``OSError`` when nothing listens, ``TimeoutError`` when the join takes too long.
    """
    client = RoomClient(base_url, room_id, ClientOptions.build("connect", options, kwargs))
    await client._start(resume)
    return client


@contextlib.asynccontextmanager
async def connect_ctx(base_url: str, room_id: str, **kwargs: Any) -> AsyncIterator[RoomClient]:
    """``async with connect_ctx(url, room) as client:`` -- :func:`connect`, then
    :meth:`RoomClient.close` on exit (a drop, not a leave), whatever happens inside."""
    client = await connect(base_url, room_id, **kwargs)
    try:
        yield client
    finally:
        await client.close()
