"""Heartbeat (contract section 4): WebSocket pings; a peer that does not answer is dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.helpers import raw_socket
from tickrelay.client import connect

INTERVAL = 0.5
TIMEOUT = 1.0


@pytest.fixture
def beating(servers):
    """A server that pings every 0.5 s and drops a peer silent for 1 s after a ping."""
    return servers.get(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)


@contextlib.asynccontextmanager
async def mute_peer(port: int, room_id: str) -> AsyncIterator[None]:
    """A WebSocket joined by a hand-written handshake that then never reads nor writes,
    so it never answers a ping (its kernel still acknowledges the TCP data)."""
    async with raw_socket(port, room_id):
        yield


async def test_a_peer_that_does_not_answer_pings_is_dropped_into_resume_grace(beating, room_id):
    async with await connect(beating.ws, room_id) as alice, mute_peer(beating.port, room_id):
        join = await alice.wait_for("join")
        gone = await alice.wait_for(
            where=lambda msg: msg["t"] in ("away", "leave") and msg["pid"] == join["pid"],
        )
        assert gone == {"t": "away", "pid": join["pid"]}
        assert join["pid"] in alice.mirror.players  # the seat is kept for the grace


async def test_a_client_that_answers_pings_stays_connected(beating, room_id):
    async with (
        await connect(beating.ws, room_id) as alice,
        await connect(beating.ws, room_id) as bob,
    ):
        await asyncio.sleep(5 * INTERVAL)  # several pings, each answered within the timeout
        assert alice.connected and bob.connected
        await alice.ping()
        assert [msg for msg in alice.drain() if msg["t"] in ("away", "leave")] == []
