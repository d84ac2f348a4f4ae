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

import httpx
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


async def test_a_ping_flood_from_a_peer_that_never_reads_gets_it_dropped(servers, room_id):
    """Closed 1008 when it keeps pinging past the high-water mark, or dropped as a slow
    consumer when its reading was paused first: away within seconds either way."""
    server = servers.get(slow_consumer_timeout=3.0)
    async with await connect(server.ws, room_id) as alice:
        with raw_peer(server.port, room_id) as peer:
            joined = await alice.wait_for("join")
            await asyncio.to_thread(flood_pings, peer, 48 * MiB)
            gone = await alice.wait_for(
                where=lambda msg: msg["t"] in ("away", "leave") and msg["pid"] == joined["pid"],
                timeout=15,
            )
            pid = joined["pid"]
            closed_1008 = {"t": "leave", "pid": pid, "reason": "error"}
            assert gone in (closed_1008, {"t": "away", "pid": pid})


async def feed_state(alice, size: int, stop: asyncio.Event) -> None:
    """Player state that changes every tick: what the stalled peer cannot keep up with."""
    seq = 0
    while not stop.is_set():
        seq += 1
        await alice.send_input({"b": f"{seq:08d}".ljust(size, "x")})
        await asyncio.sleep(1 / 30)


async def buffers_full(server, room_id: str, pid: str) -> None:
    """Wait until the server holds more for ``pid`` than its write high-water mark."""
    async with httpx.AsyncClient(base_url=server.http, headers=server.admin_headers()) as http:
        async with asyncio.timeout(20):
            while True:
                response = await http.get(f"/rooms/{room_id}/connections")
                [figures] = [entry for entry in response.json() if entry["pid"] == pid]
                if figures.get("queued_bytes", 0) > 64 * 1024:
                    return
                await asyncio.sleep(0.1)


async def stalled_host_is_dropped(server, room_id: str) -> None:
    """The stalled peer joins first (host); alice's state fills its buffers; once they are
    full, alice must see it go away and take the host role."""
    with raw_peer(server.port, room_id) as _peer:
        await asyncio.sleep(0.2)
        async with await connect(server.ws, room_id) as alice:
            stalled = alice.welcome["host"]
            assert stalled and stalled != alice.pid
            stop = asyncio.Event()
            feeder = asyncio.create_task(feed_state(alice, 50_000, stop))
            try:
                await buffers_full(server, room_id, stalled)
                gone = await alice.wait_for(
                    where=lambda msg: msg["t"] in ("away", "leave") and msg["pid"] == stalled,
                    timeout=25,
                )
                assert gone == {"t": "away", "pid": stalled}
                host = await alice.wait_for("host", where=lambda msg: msg["pid"] != stalled)
                assert host == {"t": "host", "pid": alice.pid}
            finally:
                stop.set()
                await feeder


STATE_HEAVY = {
    "tick_rate": 30,
    "max_player_state": 60_000,
    # alice's 50 KB inputs at 30 Hz are far over the default byte budget, on purpose
    "message_bytes_rate": 4 * 1024 * 1024,
    "message_bytes_burst": 4 * 1024 * 1024,
}


async def test_a_heartbeat_timeout_drops_a_peer_whose_buffers_are_full(servers, room_id):
    server = servers.get(
        **STATE_HEAVY, heartbeat_interval=3.0, heartbeat_timeout=3.0, slow_consumer_timeout=600
    )
    await stalled_host_is_dropped(server, room_id)


async def test_a_peer_whose_write_buffer_stays_full_is_dropped_as_a_slow_consumer(servers, room_id):
    server = servers.get(**STATE_HEAVY, heartbeat_interval=600, slow_consumer_timeout=1.0)
    await stalled_host_is_dropped(server, room_id)
