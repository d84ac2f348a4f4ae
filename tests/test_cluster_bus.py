"""Workers' buses over a real redis-server: batches between workers, health, gaps."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable

import pytest

from tests.redis_support import RedisServer
from tickrelay.server.cluster.bus import Bus, BusHealth
from tickrelay.server.cluster.envelope import Batch
from tickrelay.server.cluster.sequence import Arrival, Received


class Inbox:
    def __init__(self) -> None:
        self.batches: list[tuple[Batch, Received]] = []

    def __call__(self, batch: Batch, received: Received) -> None:
        self.batches.append((batch, received))

    @property
    def items(self) -> list[object]:
        return [item for batch, _ in self.batches for item in batch.items]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[Bus, Inbox, Bus, Inbox]]:
    inbox_a, inbox_b = Inbox(), Inbox()
    a = Bus(redis_server.url, "a", inbox_a)
    b = Bus(redis_server.url, "b", inbox_b)
    await a.start()
    await b.start()
    await until(lambda: a.health is BusHealth.UP and b.health is BusHealth.UP)
    yield a, inbox_a, b, inbox_b
    await a.close()
    await b.close()


async def test_items_sent_to_a_worker_reach_only_that_worker(pair) -> None:
    a, inbox_a, _, inbox_b = pair
    a.send("b", b"frame-1")
    a.send("b", b"frame-2")
    await until(lambda: len(inbox_b.items) == 2)
    assert inbox_b.items == [b"frame-1", b"frame-2"]
    assert len(inbox_b.batches) == 1  # one loop turn, one batch
    await asyncio.sleep(0.1)
    assert inbox_a.items == []


async def test_a_broadcast_reaches_every_other_worker_but_not_the_sender(pair) -> None:
    a, inbox_a, _, inbox_b = pair
    a.broadcast(["room-gone", "r1"])
    await until(lambda: inbox_b.items == [["room-gone", "r1"]])
    await asyncio.sleep(0.1)
    assert inbox_a.items == []


async def test_a_redis_outage_is_down_then_up_and_the_loss_shows_as_a_gap(
    pair, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, _, b, inbox_b = pair
    a.send("b", "before")
    await until(lambda: inbox_b.items == ["before"])
    with caplog.at_level(logging.WARNING, logger="tickrelay.cluster"):
        redis_server.kill()
        await until(lambda: b.health is BusHealth.DOWN)
        a.send("b", "lost")
        await until(lambda: a.batcher.batches_lost == 1)
        redis_server.start()
        await until(lambda: b.health is BusHealth.UP, timeout=10)
        a.send("b", "after")
        await until(lambda: "after" in inbox_b.items)
    _, received = inbox_b.batches[-1]
    assert received.arrival is Arrival.GAP
    assert received.lost == 1
    assert "lost" not in inbox_b.items
    downs = [r for r in caplog.records if "worker b lost" in r.getMessage()]
    assert len(downs) == 1  # once per transition, not once per retry


async def test_undecodable_batches_are_counted_and_dropped(pair, redis_server) -> None:
    a, _, b, inbox_b = pair
    await a.client.publish("tr:w:b", b"\xc1garbage")
    a.send("b", "good")
    await until(lambda: inbox_b.items == ["good"])
    assert b.bad_batches == 1


async def test_a_paused_redis_takes_the_publisher_down_with_the_subscription(
    pair, redis_server: RedisServer
) -> None:
    a, _, b, inbox_b = pair
    a.send("b", "before")
    await until(lambda: inbox_b.items == ["before"])
    assert redis_server.process is not None
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await until(lambda: a.health is BusHealth.DOWN, timeout=8)
        a.send("b", "into the void")
        await until(lambda: a.batcher.batches_lost >= 1, timeout=5)
    finally:
        os.kill(pid, signal.SIGCONT)
    await until(lambda: a.health is BusHealth.UP and b.health is BusHealth.UP, timeout=10)
    a.send("b", "after")
    await until(lambda: "after" in inbox_b.items)
    assert "into the void" not in inbox_b.items
