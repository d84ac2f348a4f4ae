"""One simulated player (or spectator): connects, random-walks, sends inputs, counts.

The receive path runs synchronously inside `WsConnection.data_received`: decode, one dict
lookup for `t`, and for state messages the `StateTracker` (own ack entry only, no mirror).
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from tickrelay.loadtest.config import SUBPROTOCOLS, LoadConfig
from tickrelay.loadtest.frames import Decoder, decoder, encode, input_encoder, is_text
from tickrelay.loadtest.interval import IntervalStats
from tickrelay.loadtest.tracking import StateTracker
from tickrelay.loadtest.wsclient import WsConnection

#: Above this many bytes queued towards the server, a player skips its input (and counts it):
#: the server is not reading, piling up more would only measure our own buffer.
SEND_BUFFER_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Seat:
    """Who a connection is: global index (for scheduling), room, role."""

    index: int
    room: str
    spectator: bool
    slow: bool
    token: str | None
    server: int = 0  # which of the configured URLs serves the room


class ConnectFailed(Exception):
    """The connection did not reach `welcome`; `args[0]` is a short reason for the report."""


class Player:
    """A logical player: survives reconnects (seq, position, resume token, pending acks)."""

    __slots__ = (
        "_decode",
        "_encode",
        "_handles",
        "_text",
        "_welcomed",
        "cfg",
        "closing",
        "conn",
        "open",
        "pid",
        "resume_token",
        "resumed",
        "rng",
        "seat",
        "seq",
        "stats",
        "tracker",
        "x",
        "y",
    )

    def __init__(
        self,
        cfg: LoadConfig,
        seat: Seat,
        stats: IntervalStats,
        decode: Decoder | None = None,
    ) -> None:
        self.cfg = cfg
        self.seat = seat
        self.stats = stats
        self.rng = random.Random(cfg.seed * 1_000_003 + seat.index)
        self._decode = decode or decoder(cfg.codec)
        self._encode = input_encoder(cfg.codec)
        self._text = is_text(cfg.codec)
        self.tracker = StateTracker()
        self.conn: WsConnection | None = None
        self.open = False
        self.closing = False
        self.pid: str | None = None
        self.resume_token: str | None = None
        self.resumed = False
        self.seq = 0
        self.x = 0
        self.y = 0
        self._welcomed: asyncio.Future[None] | None = None
        self._handles: set[asyncio.TimerHandle] = set()

    # -- connecting ---------------------------------------------------------------------------

    def path(self, resume: bool) -> str:
        """Request path with the query this connection needs."""
        query: dict[str, str] = {}
        if self.seat.token is not None:
            query["token"] = self.seat.token
        if resume and self.resume_token:
            query["resume"] = self.resume_token
        if self.seat.spectator:
            query["spectate"] = "1"
        path = f"{self.cfg.base_path(self.seat.server)}/ws/rooms/{self.seat.room}"
        return f"{path}?{urlencode(query)}" if query else path

    async def connect(self, resume: bool = False) -> float:
        """Open a connection and wait for `welcome`; return the seconds it took.

        Raises `ConnectFailed` with a short reason; never leaves a socket behind.
        """
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        host, port = self.cfg.host_port(self.seat.server)
        self._welcomed = loop.create_future()
        self.tracker.reset_stream()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        conn: WsConnection | None = None
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.seat.slow:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.cfg.slow.rcvbuf)
                if self.cfg.slow.mss:
                    # Loopback's 64 KiB MSS makes the server's kernel size its send buffer at
                    # ~4 MiB, hiding a stalled reader for minutes; a real network's MSS
                    # gives the server the small buffer it would have in production.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, self.cfg.slow.mss)
            async with asyncio.timeout(self.cfg.connect_timeout):
                await loop.sock_connect(sock, (host, port))
                conn = WsConnection(
                    self, host, port, self.path(resume), (SUBPROTOCOLS[self.cfg.codec],)
                )
                self.conn = conn
                await loop.create_connection(lambda: conn, sock=sock)
                await self._welcomed
        except ConnectFailed:
            self._discard(conn, sock)
            raise
        except TimeoutError:
            self._discard(conn, sock)
            raise ConnectFailed("timeout") from None
        except OSError as exc:
            self._discard(conn, sock)
            raise ConnectFailed(type(exc).__name__) from None
        except BaseException:
            self._discard(conn, sock)
            raise
        return time.perf_counter() - start

    def _discard(self, conn: WsConnection | None, sock: socket.socket) -> None:
        self.open = False
        self.closing = True
        if conn is not None and conn.transport is not None:
            conn.abort()  # the transport owns the socket now
        else:
            sock.close()
        self.conn = None

    # -- sending ------------------------------------------------------------------------------

    def send_input(self, now: float) -> None:
        """One random-walk step as an `input` (players only, open connections only)."""
        conn = self.conn
        if not self.open or conn is None:
            return
        if conn.write_buffer_size() > SEND_BUFFER_LIMIT:
            self.stats.inputs_skipped += 1
            return
        r = self.rng.random()
        if r < 0.25:
            self.x += 1
        elif r < 0.5:
            self.x -= 1
        elif r < 0.75:
            self.y += 1
        else:
            self.y -= 1
        self.seq += 1
        conn.send(self._encode(self.seq, self.x, self.y), self._text)
        self.tracker.acks.sent(self.seq, now)
        self.stats.inputs += 1

    def leave(self) -> None:
        """Send `leave` (the server then closes with 1000); the close is not counted."""
        self.closing = True
        self.open = False
        self._cancel_handles()
        conn = self.conn
        if conn is not None and conn.is_open:
            conn.send(encode(self.cfg.codec, {"t": "leave"}), self._text)

    @property
    def connected(self) -> bool:
        """Whether a TCP connection is still there (open or closing)."""
        conn = self.conn
        return conn is not None and conn.transport is not None and not conn.transport.is_closing()

    def close(self, code: int = 1000) -> None:
        """Close on the driver's initiative; the close is not counted."""
        self.closing = True
        self.open = False
        self._cancel_handles()
        if self.conn is not None:
            self.conn.close(code)

    def drop(self) -> None:
        """End the connection without `leave` (a drop: the server keeps the seat for resume)."""
        self.close(1001)
        self.stats.lost_inputs += self.tracker.acks.forget()

    # -- WsHandler ----------------------------------------------------------------------------

    def ws_open(self, subprotocol: str | None) -> None:
        """Nothing to do: the player is open once `welcome` arrives."""

    def ws_data(self, nbytes: int) -> None:
        """Count wire bytes; a rate-limited slow reader pauses for as long as they "took"."""
        self.stats.rx_bytes += nbytes
        if self.seat.slow and self.cfg.slow.mode == "rate" and self.open and self.conn:
            self.conn.pause_reading()
            self._later(nbytes / self.cfg.slow.rate, self._resume)

    def ws_message(self, payload: bytes, text: bool) -> None:
        """Dispatch one server message."""
        stats = self.stats
        try:
            msg = self._decode(payload)
            t = msg.get("t")
        except Exception:
            stats.errors["undecodable"] += 1
            return
        if t == "snap" or t == "delta":
            stats.states += 1
            if self.seat.slow:
                self.tracker.on_state(msg, time.perf_counter(), stats.latency_slow, stats.gaps_slow)
            else:
                stats.skipped_ticks += self.tracker.on_state(
                    msg, time.perf_counter(), stats.latency, stats.gaps
                )
            return
        stats.other_msgs += 1
        if t == "welcome":
            self._on_welcome(msg)
        elif t == "error":
            stats.errors[f"error:{msg.get('code')}"] += 1

    def ws_closed(self, code: int, reason: str, error: str | None) -> None:
        """Count a server-side close; fail a pending connect."""
        was_open = self.open
        self.open = False
        self._cancel_handles()
        fut = self._welcomed
        if fut is not None and not fut.done():
            fut.set_exception(ConnectFailed(error or f"close {code}"))
            return
        if self.closing or not was_open:
            return
        self.stats.closes[str(code)] += 1
        if error:
            self.stats.errors[error] += 1
        self.stats.lost_inputs += self.tracker.acks.forget()

    # -- internals ----------------------------------------------------------------------------

    def _on_welcome(self, msg: dict[str, Any]) -> None:
        pid = msg.get("pid")
        self.pid = pid if isinstance(pid, str) else None
        self.tracker.pid = None if self.seat.spectator else self.pid
        token = msg.get("resume")
        self.resume_token = token if isinstance(token, str) else None
        self.resumed = msg.get("resumed") is True
        self.open = True
        self.closing = False
        fut = self._welcomed
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self.seat.slow and self.cfg.slow.mode == "stall":
            self._stall()

    def _stall(self) -> None:
        conn = self.conn
        if not self.open or conn is None:
            return
        conn.pause_reading()
        slow = self.cfg.slow
        if slow.stall > 0:
            self._later(slow.stall, self._resume)
            self._later(max(slow.every, slow.stall), self._stall)

    def _resume(self) -> None:
        if self.open and self.conn is not None:
            self.conn.resume_reading()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        """`call_later` whose handle is kept (so closing cancels it) until it fires."""
        handles = self._handles

        def fire() -> None:
            handles.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        handles.add(handle)

    def _cancel_handles(self) -> None:
        for h in self._handles:
            h.cancel()
        self._handles.clear()
