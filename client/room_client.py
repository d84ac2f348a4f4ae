"""The asyncio room client: the I/O around the sans-I/O ``protocol`` package.

One :class:`RoomClient` is one seat (or spectator place) in one room, across however many
WebSocket connections auto-reconnect needs. Design choices, and why:

* **One background task per client** reads the socket, decodes every frame with the
  negotiated codec and dispatches it (state into :attr:`RoomClient.mirror`, ``welcome`` /
  ``host`` into attributes, ``pong`` to the waiting :meth:`RoomClient.ping`). It must never
  stop reading while the connection lives: the server treats a client that does not read
  as a slow consumer, so anything slow (tests, game logic) consumes the queue instead.
  The same task runs the reconnect loop, so :meth:`RoomClient.close` has exactly one task
  to cancel and await, and nothing is ever left pending.
* **Every decoded message is queued** (unbounded ``asyncio.Queue`` in
  :attr:`RoomClient.messages`), the first ``welcome`` and the ``welcome`` of every reconnect
  included, for :meth:`~RoomClient.recv` / :meth:`~RoomClient.wait_for`. Dispatch happens
  *before* queueing, so when a consumer sees a ``snap`` the mirror already contains it (and
  maybe later states: the mirror is always the latest state received, not the state at the
  consumer's position in the queue). Set ``keep_messages=False`` when nobody consumes
  the queue (load tester, bots), or memory grows without bound.
* **Refusals are exceptions at join time**: the contract refuses a join by accepting the
  WebSocket and closing it at once, so :func:`connect` waits for the first message and
  raises :class:`~client.errors.ConnectRefused` unless it is ``welcome``.
* **``close()`` is a drop, ``leave()`` is a leave**: close sends close code 1000 without
  ``leave``, so the server keeps the seat for the resume grace (contract section 2).
* **Auto-reconnect** (off by default, so tests see closes as they happen) resumes after the
  codes of ``tickrelay.protocol.RECONNECTABLE`` with jittered exponential backoff and joins afresh
  when the resume token is refused (``4012``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin, Subprotocol

from tickrelay.protocol import (
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    RECONNECTABLE,
    CloseCode,
    Codec,
    Limits,
    ProtocolError,
    StateMirror,
    codec_for,
    now_ms,
)

from .errors import ClientClosed, ConnectRefused
from .urls import backoff_delays, build_url

__all__ = ["CodecName", "OnReconnect", "RoomClient", "connect", "connect_ctx"]

log = logging.getLogger("tickrelay.client")

CodecName = Literal["msgpack", "json"]
#: ``on_reconnect`` callback: called with the client after each successful reconnect
#: (its ``resumed`` attribute tells a resume from a fresh join); may be sync or async.
OnReconnect = Callable[["RoomClient"], Awaitable[None] | None]

_SUBPROTOCOLS: dict[str, str] = {"msgpack": MSGPACK_SUBPROTOCOL, "json": JSON_SUBPROTOCOL}
_STATE_TYPES = frozenset({"snap", "delta"})
#: WebSocket close code the client uses when the *server* breaks the framing rules.
_CLIENT_PROTOCOL_ERROR = 1002
#: HTTP statuses worth retrying during a reconnect: a load balancer or proxy in front of a
#: restarting deployment answers these for a moment.
_RETRYABLE_STATUS = frozenset({502, 503, 504})
#: Decoding limits for *server* messages. The contract bounds client messages (64 KiB) but
#: says clients must accept whatever the state bounds allow (a full snapshot of a big room),
#: so the frame size is bounded only by ``max_size`` (the WebSocket layer) and the nesting
#: depth generously above the input depth limit plus the snapshot's own wrapping levels.
_UNBOUNDED_SIZE = 2**62
_SERVER_MAX_DEPTH = 256


def _frame_len(frame: bytes | str) -> int:
    """Payload size as sent on the wire (UTF-8 for text frames)."""
    if isinstance(frame, bytes) or frame.isascii():
        return len(frame)
    return len(frame.encode("utf-8", "surrogatepass"))


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
    """

    def __init__(
        self,
        base_url: str,
        room_id: str,
        *,
        token: str | None = None,
        token_in_header: bool = False,
        spectate: bool = False,
        codec: CodecName = "msgpack",
        origin: str | None = None,
        subprotocols: Sequence[str] | None = None,
        auto_reconnect: bool = False,
        reconnect_backoff: tuple[float, float] = (0.1, 5.0),
        reconnect_attempts: int = 10,
        open_timeout: float = 5.0,
        max_size: int | None = None,
        send_timeout: float = 10.0,
        close_timeout: float = 5.0,
        compression: Literal["deflate"] | None = None,
        headers: Mapping[str, str] | None = None,
        initial_seq: int = 0,
        keep_messages: bool = True,
        on_reconnect: OnReconnect | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Store the options; no I/O. Prefer :func:`connect`, which also joins."""
        if codec not in _SUBPROTOCOLS:
            raise ValueError(f"codec must be 'msgpack' or 'json', not {codec!r}")
        base, maximum = reconnect_backoff
        # Validate the schedule now rather than in the middle of a reconnect.
        next(backoff_delays(base, maximum, 1), None)
        # Fail fast on a malformed base URL, before any socket is opened.
        build_url(base_url, room_id)

        self._base_url = base_url
        self._token = token
        self._token_in_header = token_in_header
        self._spectate = spectate
        self._codec_name: CodecName = codec
        self._origin = origin
        self._subprotocols = list(subprotocols) if subprotocols is not None else None
        self._auto_reconnect = auto_reconnect
        self._backoff = (base, maximum)
        self._reconnect_attempts = reconnect_attempts
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._compression = compression
        self._headers = dict(headers) if headers else {}
        self._rng = rng if rng is not None else random.Random()
        self._limits = Limits(
            max_message_size=max_size if max_size is not None else _UNBOUNDED_SIZE,
            max_depth=_SERVER_MAX_DEPTH,
        )

        # From the welcome (section 2).
        self.pid: str | None = None
        self.room_id: str = room_id
        self.host: str | None = None
        self.rate: int | None = None
        self.resume_token: str | None = None
        self.spectator: bool = spectate
        self.resumed: bool = False
        self.welcome: dict[str, Any] | None = None

        self.mirror: StateMirror = StateMirror()
        self.mirror_errors: list[Exception] = []
        self.decode_errors: list[ProtocolError] = []
        self.codec: Codec | None = None

        self.seq: int = initial_seq
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.close_history: list[tuple[int | None, str | None]] = []
        self.rtt: float | None = None
        self.clock_offset_ms: float | None = None

        self.messages_received = 0
        self.bytes_received = 0
        self.state_messages = 0
        self.skipped_ticks = 0
        self.tick_gaps = 0
        self.reconnects = 0
        self.resume_failures = 0

        self.keep_messages: bool = keep_messages
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.on_reconnect: OnReconnect | None = on_reconnect
        #: Optional synchronous hook called with every decoded message after dispatch
        #: (e.g. the load tester measuring latency from ``st``). Must be quick: it runs
        #: on the reader task. Exceptions are logged and ignored.
        self.on_message: Callable[[dict[str, Any]], None] | None = None

        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._waiters: set[asyncio.Future[None]] = set()
        self._pings: dict[int, asyncio.Future[tuple[dict[str, Any], float]]] = {}
        self._ping_id = 0
        self._last_state_tick: int | None = None
        self._closing = False
        self._leaving = False
        self._fatal = False
        self._reconnecting = False

    # ------------------------------------------------------------------ properties

    @property
    def connected(self) -> bool:
        """True while a WebSocket is open and joined (False while reconnecting)."""
        return self._ws is not None

    @property
    def closed(self) -> bool:
        """True once the client is over for good (no reconnect will follow)."""
        return self._finished.is_set()

    @property
    def reconnecting(self) -> bool:
        """True between a dropped connection and the next welcome (or giving up)."""
        return self._reconnecting

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
        return now_ms() + (self.clock_offset_ms or 0.0)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "connected" if self.connected else "reconnecting"
        return f"<RoomClient room={self.room_id!r} pid={self.pid!r} {state}>"

    # ------------------------------------------------------------------ lifecycle

    async def _start(self, resume: str | None) -> None:
        """Join (raising ``ConnectRefused`` on refusal) and start the reader task."""
        ws, codec, welcome = await self._open(resume)
        self._attach(ws, codec, welcome)
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
        self._closing = True
        ws = self._ws
        if ws is not None:
            # Graceful closing handshake, bounded by close_timeout inside websockets.
            await ws.close(CloseCode.NORMAL)
        task = self._task
        if task is None:
            self._finish()
            return
        if task is asyncio.current_task():
            # Called from an on_reconnect callback: the task ends by itself now that the
            # socket is closed and _closing is set; awaiting ourselves would deadlock.
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

    async def recv(self, timeout: float | None = 5.0) -> dict[str, Any]:
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
                if self._finished.is_set():
                    raise ClientClosed(self.close_code, self.close_reason)
                await self._wait_change()

    async def wait_for(
        self,
        t: str | None = None,
        *,
        timeout: float | None = 5.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
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

    async def next_state(self, timeout: float | None = 5.0) -> dict[str, Any]:
        """Return the next queued ``snap`` or ``delta``, discarding other messages."""
        return await self.wait_for(timeout=timeout, where=lambda m: m.get("t") in _STATE_TYPES)

    def drain(self) -> list[dict[str, Any]]:
        """Return and remove every message queued so far, without waiting."""
        out: list[dict[str, Any]] = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except asyncio.QueueEmpty:
                return out

    async def wait_closed(self, timeout: float | None = 5.0) -> int | None:
        """Wait until the client is over for good and return the last close code.

        With auto-reconnect a reconnectable drop is not the end: this waits until a
        close that is not retried (or until reconnecting gives up). Raises
        ``TimeoutError`` after ``timeout`` seconds. Does not consume queued messages.
        """
        async with asyncio.timeout(timeout):
            await self._finished.wait()
        return self.close_code

    # ------------------------------------------------------------------ sending

    async def send_raw(self, frame: bytes | str) -> None:
        """Send one frame as is (bytes: binary frame, str: text frame), for tests that
        need frames the codec would never produce."""
        await self._send_frame(frame)

    async def send_message(self, message: dict[str, Any]) -> None:
        """Encode ``message`` with the negotiated codec and send it.

        Raises whatever the codec raises for unencodable values (e.g. NaN with JSON).
        """
        ws = await self._wait_connection()
        assert self.codec is not None  # set together with _ws
        await self._send_frame(self.codec.encode(message), ws)

    async def send_input(self, d: dict[str, Any], room: dict[str, Any] | None = None) -> int:
        """Send an ``input`` with the next ``seq`` (1, 2, ...) and return that ``seq``.

        ``seq`` is taken before sending and never reused, so it keeps growing across a
        resume, as the server's stale check requires.
        """
        self.seq += 1
        seq = self.seq
        message: dict[str, Any] = {"t": "input", "seq": seq, "d": d}
        if room is not None:
            message["room"] = room
        await self.send_message(message)
        return seq

    async def send_event(self, d: Any, to: list[str] | None = None) -> None:
        """Send an ``event`` to every other member, or only to the pids in ``to``."""
        message: dict[str, Any] = {"t": "event", "d": d}
        if to is not None:
            message["to"] = list(to)
        await self.send_message(message)

    async def ping(self, timeout: float | None = 5.0) -> float:
        """Send a ``ping``, wait for its ``pong`` and return the round-trip time (s).

        Also sets ``rtt`` and ``clock_offset_ms`` = ``pong.st`` minus the local wall
        clock at the midpoint of the round trip (the usual NTP-style estimate: accurate
        to within rtt/2 whatever the asymmetry of the path).
        """
        loop = asyncio.get_running_loop()
        self._ping_id += 1
        ping_id = self._ping_id
        fut: asyncio.Future[tuple[dict[str, Any], float]] = loop.create_future()
        self._pings[ping_id] = fut
        try:
            ct = now_ms()
            t0 = time.monotonic()
            await self.send_message({"t": "ping", "id": ping_id, "ct": ct})
            async with asyncio.timeout(timeout):
                pong, t1 = await fut
        finally:
            self._pings.pop(ping_id, None)
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # mark retrieved: no "exception was never retrieved"
        rtt = max(0.0, t1 - t0)
        self.rtt = rtt
        st = pong.get("st")
        if isinstance(st, int | float) and not isinstance(st, bool):
            self.clock_offset_ms = st - (ct + rtt * 1000.0 / 2.0)
        return rtt

    async def leave(self, timeout: float | None = 5.0) -> int | None:
        """Give up the seat: send ``leave``, wait for the server's close and return its
        code (1000 from a conforming server). Never reconnects afterwards."""
        self._leaving = True
        try:
            await self.send_message({"t": "leave"})
        except ClientClosed:
            return self.close_code
        return await self.wait_closed(timeout)

    async def _wait_connection(self, stale: ClientConnection | None = None) -> ClientConnection:
        """Return the open connection, waiting (``send_timeout``) while reconnecting.

        ``stale`` is a connection a send just failed on: wait for a different one, because
        the reader may not have noticed the close yet. Raises :class:`ClientClosed` when
        the client is over for good, ``TimeoutError`` when reconnecting takes too long.
        """
        ws = self._ws
        if ws is not None and ws is not stale:
            return ws
        async with asyncio.timeout(self._send_timeout):
            while True:
                ws = self._ws
                if ws is not None and ws is not stale:
                    return ws
                if self._finished.is_set():
                    raise ClientClosed(self.close_code, self.close_reason)
                await self._wait_change()

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
                if not self._auto_reconnect or self._closing or self._leaving:
                    raise ClientClosed(ws.close_code, ws.close_reason) from None
                ws = await self._wait_connection(stale=ws)

    # ------------------------------------------------------------------ internals

    def _notify(self) -> None:
        """Wake every coroutine waiting in :meth:`_wait_change`."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def _wait_change(self) -> None:
        """Wait for the next message, connection change or final close. A future per
        waiter (rather than an Event) needs no clearing, so no wake-up is ever lost."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await fut
        finally:
            self._waiters.discard(fut)

    def _offered(self) -> list[str] | None:
        if self._subprotocols is not None:
            # An empty list means "offer none" (the server then defaults to msgpack);
            # websockets would send an empty header for [], so send no header instead.
            return self._subprotocols or None
        return [_SUBPROTOCOLS[self._codec_name]]

    async def _open(self, resume: str | None) -> tuple[ClientConnection, Codec, dict[str, Any]]:
        """Open one WebSocket and read its first message, which must be ``welcome``."""
        url = build_url(
            self._base_url,
            self.room_id,
            token=None if self._token_in_header else self._token,
            resume=resume,
            spectate=self._spectate,
        )
        headers = dict(self._headers)
        if self._token is not None and self._token_in_header:
            headers["Authorization"] = f"Bearer {self._token}"
        offered = self._offered()
        try:
            ws = await ws_connect(
                url,
                origin=Origin(self._origin) if self._origin is not None else None,
                subprotocols=[Subprotocol(p) for p in offered] if offered else None,
                additional_headers=headers or None,
                open_timeout=self._open_timeout,
                close_timeout=self._close_timeout,
                max_size=self._max_size,
                compression=self._compression,
            )
        except InvalidStatus as exc:
            body = exc.response.body or b""
            reason = body[:200].decode("utf-8", "replace").strip()
            raise ConnectRefused(None, reason, status=exc.response.status_code) from exc
        except InvalidHandshake as exc:
            raise ConnectRefused(None, f"invalid handshake: {exc}") from exc
        try:
            # The server picks from our offer; no subprotocol means msgpack (section 1).
            negotiated = ws.subprotocol or MSGPACK_SUBPROTOCOL
            if negotiated not in (MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL):
                raise ConnectRefused(None, f"server chose unknown subprotocol {negotiated!r}")
            codec = codec_for(negotiated, self._limits)
            async with asyncio.timeout(self._open_timeout):
                try:
                    frame = await ws.recv()
                except ConnectionClosed as exc:
                    # Accepted then closed at once: the contract's way to refuse a join.
                    rcvd = exc.rcvd
                    code = int(rcvd.code if rcvd is not None else ws.close_code or 1006)
                    reason = rcvd.reason if rcvd is not None else ""
                    raise ConnectRefused(code, reason) from None
            self.bytes_received += _frame_len(frame)
            try:
                welcome = codec.decode(frame)
            except ProtocolError as exc:
                self.decode_errors.append(exc)
                await ws.close(_CLIENT_PROTOCOL_ERROR, "undecodable message")
                raise ConnectRefused(None, f"undecodable first message: {exc}") from exc
            if welcome.get("t") != "welcome":
                await ws.close(_CLIENT_PROTOCOL_ERROR, "expected welcome")
                raise ConnectRefused(None, f"expected welcome, got {welcome.get('t')!r}")
        except BaseException:
            # Covers refusals, timeouts and cancellation (close() during a reconnect):
            # always finish the closing handshake so no socket or task is leaked.
            await ws.close()
            raise
        return ws, codec, welcome

    def _attach(self, ws: ClientConnection, codec: Codec, welcome: dict[str, Any]) -> None:
        """Make a freshly joined connection the current one and deliver its welcome."""
        self._ws = ws
        self.codec = codec
        self.close_code = None
        self.close_reason = None
        self._last_state_tick = None  # tick gaps are measured per connection
        self._deliver(welcome)
        self._notify()  # senders waiting for a connection

    def _on_welcome(self, msg: dict[str, Any]) -> None:
        self.welcome = msg
        self.pid = msg.get("pid", self.pid)
        self.room_id = msg.get("room", self.room_id)
        self.host = msg.get("host")
        self.rate = msg.get("rate", self.rate)
        self.resume_token = msg.get("resume", self.resume_token)
        self.spectator = bool(msg.get("spectator", self.spectator))
        self.resumed = bool(msg.get("resumed", False))

    def _on_state(self, msg: dict[str, Any]) -> None:
        self.state_messages += 1
        tick = msg.get("tick")
        if isinstance(tick, int) and not isinstance(tick, bool):
            last = self._last_state_tick
            if last is not None and tick - last > 1:
                self.skipped_ticks += tick - last - 1
                self.tick_gaps += 1
            self._last_state_tick = tick
        try:
            self.mirror.apply(msg)
        except Exception as exc:  # MirrorError, or a malformed state message
            # Recorded, not raised: one bad delta must not kill the reader; tests assert
            # on mirror_errors, and the next snap repairs the mirror.
            self.mirror_errors.append(exc)
            log.warning("state message not applied to mirror: %s", exc)

    def _on_pong(self, msg: dict[str, Any]) -> None:
        ping_id = msg.get("id")
        fut = self._pings.get(ping_id) if isinstance(ping_id, int) else None
        if fut is not None and not fut.done():
            fut.set_result((msg, time.monotonic()))

    def _deliver(self, msg: dict[str, Any]) -> None:
        """Dispatch one decoded message, then queue it for consumers."""
        self.messages_received += 1
        t = msg.get("t")
        if t in _STATE_TYPES:
            self._on_state(msg)
        elif t == "welcome":
            self._on_welcome(msg)
        elif t == "host":
            self.host = msg.get("pid")
        elif t == "pong":
            self._on_pong(msg)
        if self.keep_messages:
            self.messages.put_nowait(msg)
        hook = self.on_message
        if hook is not None:
            try:
                hook(msg)
            except Exception:
                log.exception("on_message hook failed")
        self._notify()

    async def _read(self, ws: ClientConnection) -> None:
        """Read and deliver frames until the connection closes."""
        assert self.codec is not None
        codec = self.codec
        while True:
            try:
                frame = await ws.recv()
            except ConnectionClosed:
                return
            self.bytes_received += _frame_len(frame)
            try:
                msg = codec.decode(frame)
            except ProtocolError as exc:
                self.decode_errors.append(exc)
                self._fatal = True
                log.error("undecodable message from server, closing: %s", exc)
                await ws.close(_CLIENT_PROTOCOL_ERROR, "undecodable message")
                return
            self._deliver(msg)

    def _connection_ended(self, ws: ClientConnection) -> None:
        # int(): websockets reports 1006 as its own CloseCode enum member.
        code = int(ws.close_code) if ws.close_code is not None else 1006
        reason = ws.close_reason
        self._ws = None
        self.close_code = code
        self.close_reason = reason
        self.close_history.append((code, reason))
        self._notify()

    def _should_reconnect(self) -> bool:
        return (
            self._auto_reconnect
            and not self._closing
            and not self._leaving
            and not self._fatal
            and self.close_code in RECONNECTABLE
        )

    async def _supervise(self) -> None:
        """The reader task: read the current connection, reconnect when allowed."""
        try:
            while True:
                ws = self._ws
                assert ws is not None
                try:
                    await self._read(ws)
                except Exception:
                    # A bug in dispatch must not leave a silent half-dead client.
                    log.exception("client reader failed")
                    self._fatal = True
                    await ws.close(CloseCode.INTERNAL)
                self._connection_ended(ws)
                if not self._should_reconnect() or not await self._reconnect():
                    return
        finally:
            self._finish()

    async def _reconnect(self) -> bool:
        """Reconnect with ``resume`` (join afresh after ``4012``); True when joined."""
        self._reconnecting = True
        try:
            resume = self.resume_token
            base, maximum = self._backoff
            delays = backoff_delays(base, maximum, self._reconnect_attempts, self._rng)
            delay = next(delays, None)
            while delay is not None:
                await asyncio.sleep(delay)
                if self._closing or self._leaving:
                    return False
                try:
                    ws, codec, welcome = await self._open(resume)
                except ConnectRefused as exc:
                    self.close_code = exc.code
                    self.close_reason = exc.reason if exc.status is None else f"HTTP {exc.status}"
                    if exc.code == CloseCode.RESUME_FAILED and resume is not None:
                        # The grace is over or the token died: join afresh now (new pid),
                        # without spending an attempt, since this is a different request.
                        log.warning("resume refused (%s), joining afresh", exc.reason)
                        self.resume_failures += 1
                        resume = None
                        delay = 0.0
                        continue
                    if not (exc.code in RECONNECTABLE or exc.status in _RETRYABLE_STATUS):
                        log.warning("reconnect refused, giving up: %s", exc)
                        return False
                    log.info("reconnect refused, retrying: %s", exc)
                except (OSError, TimeoutError) as exc:
                    self.close_code = 1006
                    self.close_reason = f"reconnect failed: {exc!r}"
                    log.info("reconnect failed, retrying: %r", exc)
                else:
                    self._reconnecting = False
                    self.reconnects += 1
                    self._attach(ws, codec, welcome)
                    await self._call_on_reconnect()
                    return True
                delay = next(delays, None)
            log.warning("giving up reconnecting after %d attempts", self._reconnect_attempts)
            return False
        finally:
            self._reconnecting = False

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
        ws = self._ws
        if ws is not None:
            # The task was cancelled while reading: by close() (the socket is closed
            # already) or by something else such as event loop teardown (abort it then,
            # so no socket leaks). Either way record how the connection ended.
            if ws.close_code is None:
                ws.transport.abort()
            self._connection_ended(ws)
        self._reconnecting = False
        self._finished.set()
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(ClientClosed(self.close_code, self.close_reason))
        self._notify()


async def connect(
    base_url: str,
    room_id: str,
    *,
    token: str | None = None,
    token_in_header: bool = False,
    spectate: bool = False,
    codec: CodecName = "msgpack",
    resume: str | None = None,
    origin: str | None = None,
    subprotocols: Sequence[str] | None = None,
    auto_reconnect: bool = False,
    reconnect_backoff: tuple[float, float] = (0.1, 5.0),
    reconnect_attempts: int = 10,
    open_timeout: float = 5.0,
    max_size: int | None = None,
    send_timeout: float = 10.0,
    close_timeout: float = 5.0,
    compression: Literal["deflate"] | None = None,
    headers: Mapping[str, str] | None = None,
    initial_seq: int = 0,
    keep_messages: bool = True,
    on_reconnect: OnReconnect | None = None,
    rng: random.Random | None = None,
) -> RoomClient:
    """Join room ``room_id`` at ``base_url`` (``ws://host:port``) and return the client
    once its ``welcome`` has arrived.

    * ``token`` goes into the ``token`` query parameter, or into ``Authorization: Bearer``
      with ``token_in_header=True``. ``spectate=True`` adds ``spectate=1``.
    * ``codec`` picks the subprotocol offered; ``subprotocols`` overrides the whole offer
      (tests: ``[]`` offers none, unknown names provoke a handshake refusal). The codec
      actually used is the one the server chose.
    * ``resume``: a resume token from an earlier ``welcome``; pass ``initial_seq`` (the old
      client's ``seq``) too, because the server refuses a ``seq`` that is not greater than
      the last one it accepted for the player.
    * ``auto_reconnect``: after a close in ``tickrelay.protocol.RECONNECTABLE`` (1006 included),
      retry up to ``reconnect_attempts`` times with delays from
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
    client = RoomClient(
        base_url,
        room_id,
        token=token,
        token_in_header=token_in_header,
        spectate=spectate,
        codec=codec,
        origin=origin,
        subprotocols=subprotocols,
        auto_reconnect=auto_reconnect,
        reconnect_backoff=reconnect_backoff,
        reconnect_attempts=reconnect_attempts,
        open_timeout=open_timeout,
        max_size=max_size,
        send_timeout=send_timeout,
        close_timeout=close_timeout,
        compression=compression,
        headers=headers,
        initial_seq=initial_seq,
        keep_messages=keep_messages,
        on_reconnect=on_reconnect,
        rng=rng,
    )
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
