"""Peers that stop reading for real (full socket buffers) cost bounded memory and get dropped.

The peers here are raw sockets with a 4 KiB receive buffer that complete the WebSocket
handshake by hand and never read again, so the kernel buffers between them and the server
really fill: the server's write buffer then holds whatever it keeps writing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import Iterator

import psutil

from tickrelay.client import connect

PING = b"\x89\xfd" + b"\x00" * 4 + b"p" * 125  # a masked ping (zero mask), 125-byte payload
MiB = 1024 * 1024


@contextlib.contextmanager
def raw_peer(port: int, room_id: str) -> Iterator[socket.socket]:
    """A joined WebSocket that never reads after the handshake's response head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws/rooms/{room_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)  # byte by byte: the frames after the head stay unread
        assert head.startswith(b"HTTP/1.1 101"), head
        yield sock
    finally:
        sock.close()


def flood_pings(sock: socket.socket, total: int) -> int:
    """Send pings until ``total`` bytes went out or the server stopped taking them."""
    sock.setblocking(False)
    burst = PING * 512
    sent, stalled_since = 0, None
    while sent < total:
        offset = sent % len(burst)  # a partial send goes on mid-frame, never restarts one
        try:
            sent += sock.send(burst[offset:])
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 2:
                break  # the server stopped reading us
            time.sleep(0.01)
        except OSError:
            break  # closed by the server
    return sent


async def test_a_ping_flood_from_a_peer_that_never_reads_costs_bounded_memory(servers, room_id):
    server = servers.fresh()
    process = psutil.Process(server.process.pid)
    async with await connect(server.ws, room_id) as alice:
        with raw_peer(server.port, room_id) as peer:
            await alice.wait_for("join")
            before = process.memory_info().rss
            await asyncio.to_thread(flood_pings, peer, 48 * MiB)
            grown = process.memory_info().rss - before
            assert grown < 8 * MiB, f"RSS grew {grown / MiB:.1f} MiB"
            assert await alice.ping() >= 0  # the room still serves everyone else
            assert alice.connected
