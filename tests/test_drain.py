"""A stopping server first drains where everyone can see it (contract section 10)."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from tickrelay.client import ConnectRefused, connect

DRAIN = 3.0


async def readyz(server) -> int:
    async with httpx.AsyncClient(base_url=server.http, timeout=2) as http:
        return (await http.get("/readyz")).status_code


async def test_readiness_answers_503_while_the_server_drains(servers, room_id):
    server = servers.fresh(drain_seconds=DRAIN)
    assert await readyz(server) == 200
    server.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert await readyz(server) == 503
    assert server.process.poll() is None  # still up: the listener stays open for the drain


async def test_a_join_during_the_drain_is_closed_1013(servers, room_id):
    server = servers.fresh(drain_seconds=DRAIN)
    server.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    with pytest.raises(ConnectRefused) as refused:
        await connect(server.ws, room_id)
    assert refused.value.code == 1013


async def test_members_get_1012_when_the_drain_ends_and_the_process_exits(servers, room_id):
    server = servers.fresh(drain_seconds=DRAIN)
    async with await connect(server.ws, room_id) as player:
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert await player.wait_closed(timeout=DRAIN + 10) == 1012
        assert time.monotonic() - started >= DRAIN - 0.5  # they played on during the drain
    assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)


async def test_a_second_signal_skips_the_rest_of_the_drain(servers, room_id):
    server = servers.fresh(drain_seconds=60)
    async with await connect(server.ws, room_id) as player:
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert await readyz(server) == 503
        server.process.send_signal(signal.SIGTERM)
        assert await player.wait_closed(timeout=10) == 1012
    assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
