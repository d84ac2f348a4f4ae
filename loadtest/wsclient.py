"""A minimal WebSocket client on a bare `asyncio.Protocol`.

Why not the `websockets` client: its receive path (frame parser generator, assembler, a
future per `recv()`) costs several times more per message than the server work we want to
measure, and the driver shares the machine with the server. This client parses frames in
`data_received` and calls the handler synchronously: no task, future or queue per message.
It supports exactly what a load driver needs: no extensions, unfragmented sends, pings
answered, close codes reported. The server always sees correctly masked frames.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from typing import Protocol, cast

try:
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - the C speedups ship with every websockets wheel
    _c_apply_mask = None

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
#: Close code we report when the TCP connection ended without a close frame.
ABNORMAL = 1006


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR `data` with the repeated 4-byte `mask` (RFC 6455 section 5.3)."""
    if _c_apply_mask is not None:
        return _c_apply_mask(data, mask)
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def frame_header(opcode: int, length: int, mask: bytes) -> bytes:
    """Header of a final, masked client frame carrying `length` payload bytes."""
    if length < 126:
        return bytes((0x80 | opcode, 0x80 | length)) + mask
    if length < 65536:
        return bytes((0x80 | opcode, 0xFE)) + length.to_bytes(2, "big") + mask
    return bytes((0x80 | opcode, 0xFF)) + length.to_bytes(8, "big") + mask


def accept_key(key: str) -> str:
    """The `Sec-WebSocket-Accept` value the server must answer to `key`."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


class WsHandler(Protocol):
    """What a `WsConnection` reports to (the simulated player)."""

    def ws_open(self, subprotocol: str | None) -> None:
        """The opening handshake succeeded."""

    def ws_data(self, nbytes: int) -> None:
        """`nbytes` arrived on the socket (counted before framing, i.e. wire bytes)."""

    def ws_message(self, payload: bytes, text: bool) -> None:
        """One complete data message."""

    def ws_closed(self, code: int, reason: str, error: str | None) -> None:
        """The connection is over (`error` set when the handshake failed or TCP broke)."""


class WsConnection(asyncio.Protocol):
    """One client WebSocket connection driving a `WsHandler`."""

    def __init__(
        self,
        handler: WsHandler,
        host: str,
        port: int,
        path: str,
        subprotocols: tuple[str, ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self._key = base64.b64encode(random.randbytes(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        lines.extend(f"{k}: {v}" for k, v in headers)
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self._open = False
        self._buf = b""
        self._frag: list[bytes] = []
        self._frag_text = False
        self._closed = False
        self._close_sent = False
        self._close_code = ABNORMAL
        self._close_reason = ""
        self._error: str | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        transport = self.transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self.handler.ws_data(len(data))
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self._open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            if not self._handshake(data[:end].decode("latin-1")):
                return
            data = data[end + 4 :]
        self._frames(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._error is None and self._close_code == ABNORMAL:
            self._error = type(exc).__name__
        self._finish()

    # -- public -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True between a successful handshake and the first close frame either way."""
        return self._open and not self._closed and not self._close_sent

    def send(self, payload: bytes, text: bool = False) -> None:
        """Send one message in one masked frame (dropped silently once closing)."""
        t = self.transport
        if t is None or self._close_sent or t.is_closing():
            return
        mask = random.randbytes(4)
        t.write(
            frame_header(OP_TEXT if text else OP_BINARY, len(payload), mask)
            + apply_mask(payload, mask)
        )

    def write_buffer_size(self) -> int:
        """Bytes queued in user space because the server is not reading fast enough."""
        t = self.transport
        return 0 if t is None else t.get_write_buffer_size()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (if still possible) and close the TCP connection after it."""
        t = self.transport
        if t is None or t.is_closing():
            return
        if self._open and not self._close_sent:
            self._send_control(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:120])
            self._close_sent = True
        t.close()

    def abort(self) -> None:
        """Drop the TCP connection at once, as a lost network would."""
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket: the kernel buffers fill, then the server's."""
        t = self.transport
        if t is not None and not t.is_closing() and t.is_reading():
            t.pause_reading()

    def resume_reading(self) -> None:
        """Undo `pause_reading`."""
        t = self.transport
        if t is not None and not t.is_closing() and not t.is_reading():
            t.resume_reading()

    # -- internals --------------------------------------------------------------------------

    def _handshake(self, head: str) -> bool:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 101:
            self._fail(f"http {status}")
            return False
        if headers.get("sec-websocket-accept") != accept_key(self._key):
            self._fail("bad Sec-WebSocket-Accept")
            return False
        self._open = True
        self.handler.ws_open(headers.get("sec-websocket-protocol"))
        return True

    def _fail(self, error: str) -> None:
        self._error = error
        if self.transport is not None:
            self.transport.abort()

    def _frames(self, data: bytes) -> None:
        pos = 0
        n = len(data)
        handler = self.handler
        while n - pos >= 2:
            b0 = data[pos]
            ln = data[pos + 1]
            if ln & 0x80:
                self._fail("masked frame from server")
                return
            hdr = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = int.from_bytes(data[pos + 2 : pos + 4], "big")
                hdr = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(data[pos + 2 : pos + 10], "big")
                hdr = 10
            end = pos + hdr + ln
            if end > n:
                break
            payload = data[pos + hdr : end]
            pos = end
            opcode = b0 & 0x0F
            if b0 & 0x80 and opcode in (OP_BINARY, OP_TEXT):
                handler.ws_message(payload, opcode == OP_TEXT)
            elif opcode >= OP_CLOSE:
                self._control(opcode, payload)
                if self._closed or (self.transport is not None and self.transport.is_closing()):
                    return
            elif opcode == OP_CONT:
                self._frag.append(payload)
                if b0 & 0x80:
                    whole = b"".join(self._frag)
                    self._frag = []
                    handler.ws_message(whole, self._frag_text)
            else:  # first frame of a fragmented message
                self._frag = [payload]
                self._frag_text = opcode == OP_TEXT
        if pos < n:
            self._buf = data[pos:]

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._send_control(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self._close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._close_reason = payload[2:].decode("utf-8", "replace")
            if not self._close_sent:
                self._send_control(OP_CLOSE, payload[:2])
                self._close_sent = True
            if self.transport is not None:
                self.transport.close()
            self._finish()

    def _send_control(self, opcode: int, payload: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            mask = random.randbytes(4)
            t.write(frame_header(opcode, len(payload), mask) + apply_mask(payload, mask))

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.handler.ws_closed(self._close_code, self._close_reason, self._error)
