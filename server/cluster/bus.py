"""A worker's line to the others: its own channel in, batches out, health in between.

Every worker subscribes to one channel of its own and to the control channel; whatever
another worker sends it, for any number of rooms, arrives there as batches (one channel per
worker scales with workers, not with rooms). Outgoing items go through the ``Batcher``.

The bus never raises into a room. While Redis is away the reader keeps trying and the bus
is DOWN (the worker is then not ready); the subscription reconnects and resubscribes by
itself, and the first subscribe confirmation after that marks the bus UP again. What was
lost meanwhile shows up as sequence gaps, which the handler turns into resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

import redis.asyncio as aioredis

from tickrelay.server.cluster.batcher import Batcher
from tickrelay.server.cluster.envelope import BadEnvelope, Batch, unpack_batch
from tickrelay.server.cluster.redislink import Endpoint, PublishLink, SubscribeLink
from tickrelay.server.cluster.sequence import Arrival, IncomingSequences, Received

log = logging.getLogger("tickrelay.cluster")

CONTROL = "tr:ctl"

BatchHandler = Callable[[Batch, Received], None]


def worker_channel(worker_id: str) -> str:
    return f"tr:w:{worker_id}"


class BusHealth(Enum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


class Bus:
    """Owns the Redis client, the two hot connections, the reader task and the batcher.

    The redis-py ``client`` serves everything but the batches (leases, checkpoints, the
    directory); the batches go through ``redislink``'s raw connections, which cost a
    fraction of redis-py's Python per batch."""

    def __init__(
        self,
        url: str,
        worker_id: str,
        on_batch: BatchHandler,
        boot: int = 1,
        flush_interval: float = 0.0,
    ) -> None:
        self.worker_id = worker_id
        self.channel = worker_channel(worker_id)
        # RESP2 pinned: the protocol leases, checkpoints and the directory were written and
        # tested against, whatever redis-py's default becomes.
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=1,
            protocol=2,
        )  # fmt: skip
        endpoint = Endpoint.from_url(url, timeout=2.0)
        self._on_batch = on_batch
        self._incoming = IncomingSequences()
        self._publisher = PublishLink(endpoint)
        self._subscription = SubscribeLink(
            endpoint, [self.channel, CONTROL], self._dispatch, self._up, self._down
        )
        self.batcher = Batcher(worker_id, boot, self._publisher, flush_interval)
        self._reader: asyncio.Task[None] | None = None
        self.health = BusHealth.CONNECTING
        self.bad_batches = 0

    async def start(self) -> None:
        """Start reading; if Redis is not there yet, the reader keeps trying (not ready)."""
        self._reader = asyncio.get_running_loop().create_task(
            self._subscription.run(), name="cluster-bus"
        )

    def send(self, worker_id: str, item: Any) -> None:
        """At the end of this loop turn: what a client waits for."""
        self.batcher.send_now(worker_channel(worker_id), item)

    def forward(self, worker_id: str, item: Any) -> None:
        """With the next flush, within ``flush_interval``: what waits for a tick anyway."""
        self.batcher.send(worker_channel(worker_id), item)

    def forward_by(self, worker_id: str, item: Any, due: float) -> None:
        """At ``due`` (loop time) at the latest: forwarded inputs, for the owner's tick."""
        self.batcher.send_by(worker_channel(worker_id), item, due)

    def broadcast(self, item: Any) -> None:
        self.batcher.send_now(CONTROL, item)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self.batcher.close()
        self._publisher.close()
        await self.client.aclose()

    @property
    def publishes_refused(self) -> int:
        return self._publisher.error_replies

    def _dispatch(self, data: bytes) -> None:
        try:
            batch = unpack_batch(data)
        except BadEnvelope:
            self.bad_batches += 1
            return
        if batch.source == self.worker_id:
            return  # our own broadcast on the control channel
        received = self._incoming.receive(batch.source, batch.boot, batch.seq)
        if received.arrival is not Arrival.OLD:
            self._on_batch(batch, received)

    def _up(self) -> None:
        self._set_health(BusHealth.UP, None)

    def _down(self, exc: BaseException) -> None:
        """The subscription is the only one to hear Redis: when it stops answering, the
        publishing connection (which gets no replies) is dropped too, so flushes count
        their batches lost rather than fill a dead socket."""
        self._publisher.drop()
        self._set_health(BusHealth.DOWN, exc)

    def _set_health(self, health: BusHealth, exc: BaseException | None) -> None:
        if health is self.health:
            return
        previous, self.health = self.health, health
        if health is BusHealth.DOWN:
            log.warning("worker %s lost its Redis subscription, retrying: %s", self.worker_id, exc)
        elif previous is BusHealth.DOWN:
            log.warning("worker %s is subscribed again; losses show as gaps", self.worker_id)
