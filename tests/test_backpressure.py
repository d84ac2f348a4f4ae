"""Backpressure (contract section 4): a client that stops reading costs only its own frames.

A client "stops reading" for real here: a raw WebSocket with a tiny socket receive buffer
and ``max_queue=1``, so it stops reading its socket after one frame and the kernel buffers
between it and the server fill up. Loopback kernel buffers hold a few MiB, so the tests send
states of a few KiB (and the host room patches of tens of KiB) to fill them within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tickrelay.client import RoomClient, connect
from tickrelay.protocol import Limits, MirrorError, MsgpackCodec, StateMirror

BOUND = 256 * 1024  # 64 KiB transport high-water + one state message + reliable queue bound
CODEC = MsgpackCodec(Limits(max_message_size=2**30))
FAST_SENDER = {"message_bytes_rate": 8 * 1024 * 1024}
"""Tests that flood a room with 60 KB messages to fill a reader's buffers: a byte budget
that lets the sender do it (the default refuses past 128 KiB a second)."""


def blob(seq: int, size: int) -> str:
    return f"{seq:08d}".ljust(size, "x")


@contextlib.asynccontextmanager
async def stalled_connection(base: str, room_id: str) -> AsyncIterator[ClientConnection]:
    """A raw WebSocket that stops reading its socket as soon as one frame is buffered.

    It reads again (``recv``) only when the test asks it to; it can always send.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        host, port = base.removeprefix("ws://").rsplit(":", 1)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    except BaseException:
        sock.close()
        raise
    ws = await ws_connect(
        f"{base}/ws/rooms/{room_id}",
        sock=sock,
        max_queue=1,
        compression=None,
        proxy=None,
        ping_interval=None,
        close_timeout=1,
    )
    try:
        yield ws
    finally:
        ws.transport.abort()
        await ws.wait_closed()


async def recv_message(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return CODEC.decode(await asyncio.wait_for(ws.recv(), timeout))


async def send_input(ws: ClientConnection, seq: int, d: dict[str, Any]) -> None:
    await ws.send(CODEC.encode({"t": "input", "seq": seq, "d": d}))


async def member_figures(http: httpx.AsyncClient, room_id: str, pid: str) -> dict[str, Any]:
    """What the server reports holding for ``pid`` (GET /rooms/{id}/connections)."""
    response = await http.get(f"/rooms/{room_id}/connections")
    assert response.status_code == 200
    [entry] = [e for e in response.json() if e["pid"] == pid]
    return entry


async def wait_figures(
    http: httpx.AsyncClient, room_id: str, pid: str, predicate: Any, timeout: float = 15.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            figures = await member_figures(http, room_id, pid)
            if predicate(figures):
                return figures
            await asyncio.sleep(0.1)


async def test_a_stalled_client_slows_no_one_and_its_queued_bytes_stay_bounded(server, room_id):
    """6 players send input at 20 Hz for 10 s; one stops reading: the others keep the tick
    rate and the server's memory for the stalled one stays bounded."""
    tick_rate, duration, size = 20, 10.0, 6000
    healthy: list[RoomClient] = []
    samples: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.http, headers=server.admin_headers()) as http:
        try:
            for _ in range(5):
                healthy.append(await connect(server.ws, room_id, keep_messages=False))
            async with stalled_connection(server.ws, room_id) as stalled:
                stalled_pid = (await recv_message(stalled))["pid"]

                async def sample() -> None:
                    while True:
                        samples.append(await member_figures(http, room_id, stalled_pid))
                        await asyncio.sleep(0.5)

                sampler = asyncio.create_task(sample())
                try:
                    before = [client.state_messages for client in healthy]
                    started = time.monotonic()
                    seq = 0
                    while (elapsed := time.monotonic() - started) < duration:
                        seq += 1
                        for client in healthy:
                            await client.send_input({"b": blob(seq, size)})
                        await send_input(stalled, seq, {"b": blob(seq, size)})
                        await asyncio.sleep(max(0.0, seq / tick_rate - elapsed))
                    measured = time.monotonic() - started
                    after = [client.state_messages for client in healthy]
                finally:
                    sampler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sampler
                samples.append(await member_figures(http, room_id, stalled_pid))
        finally:
            for client in healthy:
                await client.close()

    rates = [(n1 - n0) / measured for n0, n1 in zip(before, after, strict=True)]
    assert all(rate >= 0.8 * tick_rate for rate in rates), rates
    assert all(client.mirror_errors == [] for client in healthy)
    queued = [s["queued_bytes"] for s in samples]
    assert max(queued) < BOUND, queued
    behind = [s for s in samples if s["skipped_states"] > 0]
    assert len(behind) >= 4, f"the client never fell behind for long: {samples}"
    assert behind[-1]["skipped_states"] > behind[0]["skipped_states"]
    held = [s["queued_bytes"] for s in behind]
    half = len(held) // 2
    assert max(held[half:]) <= max(held[:half]) + 8 * 1024, held


async def test_a_client_that_reads_again_after_stalling_gets_a_snap_and_continues(servers, room_id):
    server = servers.get(**FAST_SENDER)
    async with httpx.AsyncClient(base_url=server.http, headers=server.admin_headers()) as http:
        created = await http.post("/rooms", json={"id": room_id, "tick_rate": 40})
        assert created.status_code == 201
        async with (
            await connect(server.ws, room_id) as host,
            stalled_connection(server.ws, room_id) as stalled,
        ):
            assert host.welcome["host"] == host.pid
            stalled_pid = (await recv_message(stalled))["pid"]

            async def flood_room_state() -> None:
                while True:
                    await host.send_input({}, room={"b": blob(host.seq + 1, 60_000)})
                    await asyncio.sleep(1 / 40)

            flood = asyncio.create_task(flood_room_state())
            try:
                await wait_figures(http, room_id, stalled_pid, lambda f: f["skipped_states"] > 0)
            finally:
                flood.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flood
            final = {"b": "the end"}
            mirror = StateMirror()
            snaps: list[int] = []
            errors: list[MirrorError] = []
            end_sent = False
            while mirror.room != final:
                message = await recv_message(stalled)
                if message["t"] == "snap":
                    snaps.append(message["tick"])
                try:
                    mirror.apply(message)
                except MirrorError as exc:
                    errors.append(exc)
                if not end_sent and len(snaps) > 1:
                    await host.send_input({}, room=final)
                    end_sent = True
    assert errors == []
    assert len(snaps) >= 2, "a client that skipped states must be resynced with a snap"
    assert mirror.acks[host.pid] == host.seq


async def test_a_reliable_queue_overflow_closes_4011_and_counts_as_a_drop(servers, room_id):
    server = servers.get(reliable_queue_messages=16, **FAST_SENDER)
    async with (
        httpx.AsyncClient(base_url=server.http, headers=server.admin_headers()) as http,
        await connect(server.ws, room_id) as sender,
        await connect(server.ws, room_id) as observer,
        stalled_connection(server.ws, room_id) as stalled,
    ):
        stalled_pid = (await recv_message(stalled))["pid"]
        await observer.wait_for("join", where=lambda j: j["pid"] == stalled_pid)

        async def flood_events() -> None:
            seq = 0
            while True:
                seq += 1
                await sender.send_event({"b": blob(seq, 60_000)})
                await asyncio.sleep(1 / 25)

        flood = asyncio.create_task(flood_events())
        try:
            away = await observer.wait_for(
                where=lambda msg: msg["t"] in ("away", "leave") and msg["pid"] == stalled_pid,
                timeout=15,
            )
        finally:
            flood.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flood
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await stalled.recv()
        assert away == {"t": "away", "pid": stalled_pid}
        assert stalled.close_code == 4011
        figures = await member_figures(http, room_id, stalled_pid)
        assert figures["away"] is True
