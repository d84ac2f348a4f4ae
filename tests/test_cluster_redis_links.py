"""Batches between workers over a real redis-server: one publish per destination per loop
turn, sequence numbers per link, and losses counted (never raised) while Redis is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.redis_support import RedisServer, free_port
from tickrelay.server.cluster.batcher import Batcher, LinkHealth
from tickrelay.server.cluster.envelope import Batch, unpack_batch
from tickrelay.server.cluster.redislink import Endpoint, PublishLink
from tickrelay.server.cluster.sequence import Arrival, IncomingSequences


class Listener:
    """A subscriber on some channels that decodes every batch it gets."""

    def __init__(self, redis_client: aioredis.Redis) -> None:
        self.pubsub = redis_client.pubsub()

    async def start(self, *channels: str) -> None:
        await self.pubsub.subscribe(*channels)

    async def next(self, timeout: float = 3.0) -> tuple[str, Batch]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    return message["channel"].decode(), unpack_batch(message["data"])

    async def close(self) -> None:
        await self.pubsub.aclose()


@pytest.fixture
async def listener(redis_client: aioredis.Redis) -> AsyncIterator[Listener]:
    subscriber = Listener(redis_client)
    await subscriber.start("to-a", "to-b")
    yield subscriber
    await subscriber.close()


class CountingLink(PublishLink):
    """The real Redis link, counting its writes (one per publish of a flush)."""

    def __init__(self, url: str) -> None:
        super().__init__(Endpoint.from_url(url, timeout=1.0))
        self.calls = 0

    def write(self, batches: list[tuple[str, bytes]]) -> bool:
        written = super().write(batches)
        self.calls += written
        return written


@pytest.fixture
def link(redis_server: RedisServer) -> Iterator[CountingLink]:
    publisher = CountingLink(redis_server.url)
    yield publisher
    publisher.close()


async def settle(batcher: Batcher) -> None:
    for _ in range(50):
        await asyncio.sleep(0.01)
        if batcher._flushing is None and not batcher._pending:
            return


async def one_turn(link: CountingLink) -> Batcher:
    """A batcher that was sent three items for ``to-a`` and one for ``to-b`` in one loop
    turn, and flushed them."""
    batcher = Batcher("w1", 1, link)
    for item in (b"s1", b"s2", b"s3"):
        batcher.send("to-a", item)
    batcher.send("to-b", b"e1")
    await settle(batcher)
    return batcher


async def test_one_loop_turn_leaves_in_one_batch_per_destination(
    link: CountingLink, listener: Listener
) -> None:
    batcher = await one_turn(link)
    got = dict([await listener.next(), await listener.next()])
    assert got["to-a"].items == [b"s1", b"s2", b"s3"]
    assert got["to-b"].items == [b"e1"]
    assert link.calls == 1  # both batches in one write
    await batcher.close()


async def test_a_flush_counts_its_batches_and_the_items_in_them(link: CountingLink) -> None:
    batcher = await one_turn(link)
    assert (batcher.batches_sent, batcher.items_sent) == (2, 4)
    await batcher.close()


async def test_each_loop_turn_takes_the_next_sequence_number(
    link: CountingLink, listener: Listener
) -> None:
    batcher = Batcher("w1", 1, link)
    for turn in range(3):
        batcher.send("to-a", turn)
        await settle(batcher)
    seqs = [(await listener.next())[1].seq for _ in range(3)]
    assert seqs == [1, 2, 3]
    await batcher.close()


async def test_items_sent_while_a_flush_connects_follow_in_the_next_batch_in_order(
    link: CountingLink, listener: Listener
) -> None:
    batcher = Batcher("w1", 1, link)
    batcher.send("to-a", 1)
    await asyncio.sleep(0)  # the first flush is now connecting
    batcher.send("to-a", 2)
    batcher.send("to-a", 3)
    await settle(batcher)
    first, second = (await listener.next())[1], (await listener.next())[1]
    assert (first.seq, first.items) == (1, [1])
    assert (second.seq, second.items) == (2, [2, 3])
    await batcher.close()


async def test_batches_published_while_redis_is_down_are_counted_lost_and_logged_once(
    redis_server: RedisServer, link: CountingLink, caplog: pytest.LogCaptureFixture
) -> None:
    batcher = Batcher("w1", 1, link)
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="tickrelay.cluster"):
        for turn in range(3):
            batcher.send("to-a", turn)
            batcher.send("to-b", turn)
            await settle(batcher)
    assert batcher.health is LinkHealth.DOWN
    assert (batcher.batches_lost, batcher.items_lost) == (6, 6)
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1
    await batcher.close()


async def test_a_receiver_sees_what_a_redis_restart_lost_as_a_gap(
    redis_server: RedisServer, redis_client: aioredis.Redis, link: CountingLink
) -> None:
    batcher = Batcher("w1", 1, link)
    incoming = IncomingSequences()
    subscriber = Listener(redis_client)
    await subscriber.start("to-a")
    batcher.send("to-a", "before")
    await settle(batcher)
    _, batch = await subscriber.next()
    assert incoming.receive(batch.source, batch.boot, batch.seq).arrival is Arrival.FIRST

    redis_server.restart()  # comes back empty; the subscriber's connection is gone
    batcher.send("to-a", "lost")
    await settle(batcher)  # fails (or lands nowhere: nobody is subscribed yet)
    received: list[Any] = []
    async with asyncio.timeout(10):
        while not received:  # the link reconnects on its next flush
            batcher.send("to-a", "after")
            await settle(batcher)
            with contextlib.suppress(TimeoutError, aioredis.ConnectionError):
                received.append((await subscriber.next(timeout=0.5))[1])
    batch = received[0]
    arrival = incoming.receive(batch.source, batch.boot, batch.seq)
    assert arrival.arrival is Arrival.GAP
    assert arrival.lost >= 1
    await batcher.close()
    await subscriber.close()


async def flushed_once(batcher: Batcher, listener: Listener) -> None:
    """The first item after a quiet spell leaves at once; later ones meet the interval."""
    batcher.send("to-a", b"first")
    assert (await listener.next())[1].items == [b"first"]


async def flushed_batcher(link: CountingLink, listener: Listener, min_interval: float) -> Batcher:
    """A batcher that just flushed: what it is sent next waits for its due time."""
    batcher = Batcher("w1", 1, link, min_interval=min_interval)
    await flushed_once(batcher, listener)
    return batcher


def publish_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "cluster-publish"]


async def test_deferred_items_wait_for_the_flush_interval(
    link: CountingLink, listener: Listener
) -> None:
    batcher = await flushed_batcher(link, listener, 0.2)
    for item in (b"i1", b"i2", b"i3"):
        batcher.send("to-a", item)
        await asyncio.sleep(0.02)  # three loop turns, all inside the interval
    assert link.calls == 1
    assert (await listener.next())[1].items == [b"i1", b"i2", b"i3"]
    assert link.calls == 2
    await batcher.close()


async def test_an_urgent_item_takes_the_deferred_ones_with_it_this_turn(
    link: CountingLink, listener: Listener
) -> None:
    batcher = await flushed_batcher(link, listener, 5.0)
    batcher.send("to-a", b"input")  # would wait five seconds
    batcher.send_now("to-b", b"state")
    got = dict([await listener.next(timeout=1.0), await listener.next(timeout=1.0)])
    assert got["to-a"].items == [b"input"]
    assert got["to-b"].items == [b"state"]
    await batcher.close()


async def test_items_due_by_one_time_leave_together_then_and_not_before(
    link: CountingLink, listener: Listener
) -> None:
    batcher = await flushed_batcher(link, listener, 0.0)
    due = asyncio.get_running_loop().time() + 0.15  # an owner's next tick, less the lead
    for item in (b"i1", b"i2", b"i3"):
        batcher.send_by("to-a", item, due)
        await asyncio.sleep(0.02)  # three loop turns, each of which could have flushed
    assert link.calls == 1
    assert (await listener.next())[1].items == [b"i1", b"i2", b"i3"]
    assert asyncio.get_running_loop().time() >= due - 0.002  # the loop clock is in ms
    assert link.calls == 2
    await batcher.close()


async def test_an_earlier_due_time_brings_the_flush_forward(
    link: CountingLink, listener: Listener
) -> None:
    batcher = await flushed_batcher(link, listener, 5.0)
    now = asyncio.get_running_loop().time()
    batcher.send("to-a", b"event")  # would wait five seconds
    batcher.send_by("to-a", b"input", now + 0.05)
    assert (await listener.next(timeout=1.0))[1].items == [b"event", b"input"]
    await batcher.close()


async def test_an_urgent_item_takes_the_items_due_later_with_it(
    link: CountingLink, listener: Listener
) -> None:
    batcher = await flushed_batcher(link, listener, 5.0)
    batcher.send_by("to-a", b"input", asyncio.get_running_loop().time() + 5.0)
    batcher.send_now("to-a", b"state")
    assert (await listener.next(timeout=1.0))[1].items == [b"input", b"state"]
    await batcher.close()


async def test_a_batch_says_how_long_its_first_urgent_item_waited(
    link: CountingLink, listener: Listener
) -> None:
    """An owner publishes its states once all its rooms have stepped: the receiver times
    the owner's tick by when the first of them was sent, not by the earlier inputs."""
    batcher = await flushed_batcher(link, listener, 5.0)
    batcher.send_by("to-a", b"input", asyncio.get_running_loop().time() + 5.0)
    time.sleep(0.02)  # the input waited longer than the states
    batcher.send_now("to-a", b"state 1")
    time.sleep(0.01)  # the next room's step
    batcher.send_now("to-a", b"state 2")
    held = (await listener.next(timeout=1.0))[1].held
    assert 0.01 <= held < 0.02
    await batcher.close()


async def test_close_sends_what_is_pending(link: CountingLink, listener: Listener) -> None:
    batcher = await flushed_batcher(link, listener, 5.0)
    batcher.send("to-a", b"handover")  # a drain's last words, due in five seconds
    await batcher.close()
    assert (await listener.next())[1].items == [b"handover"]


async def test_close_leaves_no_publish_task_behind_when_redis_is_away() -> None:
    link = PublishLink(Endpoint.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2))
    batcher = Batcher("w1", 1, link)
    batcher.send("to-a", b"nobody hears this")
    await asyncio.sleep(0)  # the flush is connecting
    await batcher.close()
    await asyncio.sleep(0.3)
    assert publish_tasks() == []
    assert (batcher.batches_lost, batcher.items_lost) == (1, 1)
    assert not link.connected


async def test_close_schedules_no_flush_after_a_failed_connect() -> None:
    """A connect that fails while close() waits for it must not start another flush
    (which close() would leave running): what is pending is close()'s to send."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, reads, answers nothing (not even the PING)
        writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    link = PublishLink(Endpoint.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.3))
    batcher = Batcher("w1", 1, link)
    batcher.send("to-a", b"first")
    await asyncio.sleep(0)  # the flush is connecting, and will time out during close()
    batcher.send("to-a", b"second")  # waits for it
    await batcher.close()
    assert publish_tasks() == []
    assert (batcher.batches_lost, batcher.items_lost) == (2, 2)
    silent.close()
    await silent.wait_closed()
