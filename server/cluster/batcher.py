"""One publish per destination per event-loop turn.

An awaited ``PUBLISH`` per message costs 120-145 µs of client CPU, several times a whole
message's budget. So ``send`` only appends to the destination's list and, the first time in
a loop turn, schedules a flush with ``call_soon``: everything sent during that turn (a
tick's state for every worker with members, the presence and events around it) leaves in
one batch per destination, all batches in one pipeline round trip.

One flush is in flight at a time, so batches to a destination leave in sequence order.
Items sent meanwhile wait for the next flush. A failed publish loses its batches: they are
counted, their sequence numbers are spent, and receivers see the gap (redis-py gives us no
better guarantee across a Redis restart anyway). The failure is logged once per transition,
not once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from tickrelay.server.cluster.envelope import pack_batch
from tickrelay.server.cluster.sequence import OutgoingSequences

log = logging.getLogger("tickrelay.cluster")

Publish = Callable[[list[tuple[str, bytes]]], Awaitable[None]]


class LinkHealth(Enum):
    UP = "up"
    DOWN = "down"


class Batcher:
    """Collects items per destination channel; flushes once per loop turn."""

    def __init__(self, source: str, boot: int, publish: Publish, min_interval: float = 0.0) -> None:
        self._source = source
        self._min_interval = min_interval
        self._last_flush = -min_interval
        self._boot = boot
        self._publish = publish
        self._pending: dict[str, list[Any]] = {}
        self._sequences = OutgoingSequences()
        self._scheduled = False
        self._flushing: asyncio.Task[None] | None = None
        self.health = LinkHealth.UP
        self.turns = 0
        self.batches_sent = 0
        self.batches_lost = 0
        self.items_lost = 0

    def send(self, channel: str, item: Any) -> None:
        items = self._pending.get(channel)
        if items is None:
            self._pending[channel] = [item]
        else:
            items.append(item)
        if not self._scheduled:
            self._scheduled = True
            self._schedule()

    def _schedule(self) -> None:
        """At the end of this loop turn, or ``min_interval`` after the last flush if that is
        later: the first message after a quiet spell leaves at once, and under load the
        messages of several turns share one publish (each publish wakes Redis and the
        receiving worker, which on a shared core costs more than the Python around it)."""
        loop = asyncio.get_running_loop()
        wait = self._last_flush + self._min_interval - loop.time()
        if wait > 0:
            loop.call_later(wait, self._flush)
        else:
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._flushing is not None or not self._pending:
            return  # the running flush starts the next one when it ends
        pending, self._pending = self._pending, {}
        self._last_flush = asyncio.get_running_loop().time()
        self.turns += 1  # what was sent so far is packed now: later items start new ones
        batches = [
            (channel, pack_batch(self._source, self._boot, self._sequences.next(channel), items))
            for channel, items in pending.items()
        ]
        item_count = sum(len(items) for items in pending.values())
        self._flushing = asyncio.get_running_loop().create_task(
            self._send(batches, item_count), name="cluster-publish"
        )

    async def _send(self, batches: list[tuple[str, bytes]], item_count: int) -> None:
        try:
            await self._publish(batches)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.batches_lost += len(batches)
            self.items_lost += item_count
            self._set_health(LinkHealth.DOWN, exc)
        else:
            self.batches_sent += len(batches)
            self._set_health(LinkHealth.UP, None)
        finally:
            self._flushing = None
        if self._pending and not self._scheduled:
            self._scheduled = True
            self._schedule()

    def _set_health(self, health: LinkHealth, exc: Exception | None) -> None:
        if health is self.health:
            return
        self.health = health
        if exc is not None:
            log.warning("publishing to Redis failed, batches are counted as lost: %s", exc)
        else:
            log.warning("publishing to Redis works again (%d batches lost)", self.batches_lost)

    async def close(self) -> None:
        """Wait for the flush in flight (briefly), then drop what is left unsent."""
        task = self._flushing
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 1.0)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pending.clear()


def redis_publisher(client: Any) -> Publish:
    """A ``Publish`` over redis.asyncio: every batch of a flush in one pipeline round trip."""

    async def publish(batches: list[tuple[str, bytes]]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for channel, data in batches:
                pipe.publish(channel, data)
            await pipe.execute()

    return publish
