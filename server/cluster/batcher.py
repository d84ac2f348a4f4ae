"""Batches per destination: a publish carries everything sent since the last one.

An awaited ``PUBLISH`` per message costs 120-145 µs of client CPU, several times a whole
message's budget, and every publish wakes Redis and the receiving worker. So sending only
appends to the destination's list and schedules a flush, for the earliest time something
pending must leave: ``send_now`` at the end of this loop turn (a tick's states: a worker's
rooms with members elsewhere tick at one shared instant, so one batch per destination
carries all their states), ``send_by`` at a given time (forwarded inputs, which leave just ahead of
the owner's next tick, so the inputs for an owner's rooms share one publish), ``send`` at
most once per ``min_interval`` (what a room takes at once but nobody waits for to the
millisecond: joins, events, leaves). A flush takes everything pending, whatever its due
time, and writes one batch per destination, all in one write, awaiting nothing: the link
asks Redis for no replies.

Only a flush that has to (re)connect first runs as a task, and while it does, later items
wait for it, so batches to a destination leave in sequence order. A batch that cannot be
published is lost: it is counted, its sequence number is spent, and receivers see the gap
(what a broken connection swallowed is lost the same way, without a count). The failure is
logged once per transition, not once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from enum import Enum
from typing import Any, Protocol

from tickrelay.server.cluster.envelope import pack_batch
from tickrelay.server.cluster.sequence import OutgoingSequences

log = logging.getLogger("tickrelay.cluster")

CLOSE_TIMEOUT = 1.0
SOON = -math.inf  # due at the end of this loop turn
NOTHING = math.inf  # nothing pending


class Link(Protocol):
    """Where batches go (``redislink.PublishLink``)."""

    def write(self, batches: list[tuple[str, bytes]]) -> bool:
        """Publish at once; False, with nothing written, when not connected."""

    async def connect(self) -> None:
        """Raises when the other side cannot be reached."""


class LinkHealth(Enum):
    UP = "up"
    DOWN = "down"


class Batcher:
    """Collects items per destination channel; one flush carries them all."""

    def __init__(self, source: str, boot: int, link: Link, min_interval: float = 0.0) -> None:
        self._source = source
        self._min_interval = min_interval
        self._last_flush = -min_interval
        self._boot = boot
        self._link = link
        self._pending: dict[str, list[Any]] = {}
        # When the first item of each destination's batch that was due at once came: a
        # batch's ``held`` time (the inputs pending with an owner's states came earlier,
        # but a receiver times the owner's tick by its states).
        self._since: dict[str, float] = {}
        self._sequences = OutgoingSequences()
        self._flush_handle: asyncio.Handle | None = None
        # When the earliest pending item must leave (loop time; SOON: at the end of this
        # turn). The flush is armed for then, except while a connecting flush runs.
        self._due_at = NOTHING
        self._flushing: asyncio.Task[None] | None = None  # a flush that connects first
        self._closing = False  # no new flush is scheduled once close() began
        self.health = LinkHealth.UP
        self.turns = 0
        self.batches_sent = 0
        self.items_sent = 0
        self.batches_lost = 0
        self.items_lost = 0

    def send(self, channel: str, item: Any) -> None:
        """Leaves with the next flush: at the end of this loop turn, or ``min_interval``
        after the last flush if that is later. Under load the messages of several turns
        share one publish: each publish wakes Redis and the receiving worker, which on a
        shared core costs more than the Python around it."""
        self._append(channel, item)
        due = self._last_flush + self._min_interval
        if due < self._due_at:
            self._due(due)

    def send_by(self, channel: str, item: Any, due: float) -> None:
        """Leaves at ``due`` (loop time) at the latest, with any flush before: what the
        receiver only uses at an instant both sides know (forwarded inputs, at the owner's
        next tick), so everything due then shares one publish."""
        self._append(channel, item)
        if due < self._due_at:
            self._due(due)

    def send_now(self, channel: str, item: Any) -> None:
        """Leaves at the end of this loop turn, with everything pending: what a client
        waits for (a tick's states, reliable messages, answers)."""
        self._append(channel, item)
        if channel not in self._since:
            self._since[channel] = time.monotonic()
        if self._due_at != SOON:
            self._due(SOON)

    def _append(self, channel: str, item: Any) -> None:
        items = self._pending.get(channel)
        if items is None:
            self._pending[channel] = [item]
        else:
            items.append(item)

    def _due(self, at: float) -> None:
        """Something pending must leave at ``at``, sooner than anything else pending."""
        self._due_at = at
        if self._flushing is None:
            self._arm()

    def _arm(self) -> None:
        """Schedule the flush for ``_due_at`` (the one armed before was for later)."""
        if self._closing or self._due_at == NOTHING:
            return
        handle = self._flush_handle
        if handle is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        wait = self._due_at - loop.time()
        if wait > 0:
            self._flush_handle = loop.call_later(wait, self._flush)
        else:
            self._due_at = SOON
            self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._flushing is None:  # else the connecting flush arms the next one
            self._due_at = NOTHING
            if self._pending:
                self._flushing = self._publish(*self._take())

    def _publish(
        self, batches: list[tuple[str, bytes]], item_count: int
    ) -> asyncio.Task[None] | None:
        """Write now; only when the link must connect first, the task that does."""
        if self._link.write(batches):
            self._sent(batches, item_count)
            return None
        return asyncio.get_running_loop().create_task(
            self._connect_and_send(batches, item_count), name="cluster-publish"
        )

    def _take(self) -> tuple[list[tuple[str, bytes]], int]:
        """Pack what is pending, one batch per destination, each with its next sequence."""
        pending, self._pending = self._pending, {}
        since, self._since = self._since, {}
        self._last_flush = asyncio.get_running_loop().time()
        self.turns += 1  # what was sent so far is packed now: later items start new ones
        now = time.monotonic()
        source, boot, next_seq = self._source, self._boot, self._sequences.next
        batches = []
        for channel, items in pending.items():
            held = now - since.get(channel, now)
            batches.append((channel, pack_batch(source, boot, next_seq(channel), items, held)))
        return batches, sum(len(items) for items in pending.values())

    async def _connect_and_send(self, batches: list[tuple[str, bytes]], item_count: int) -> None:
        try:
            await self._link.connect()
            if not self._link.write(batches):
                raise ConnectionError("the connection to Redis closed at once")
        except asyncio.CancelledError:
            self._lost(batches, item_count)
            raise
        except Exception as exc:
            self._lost(batches, item_count)
            self._set_health(LinkHealth.DOWN, exc)
        else:
            self._sent(batches, item_count)
        finally:
            self._flushing = None
        if self._pending:
            self._arm()

    def _lost(self, batches: list[tuple[str, bytes]], item_count: int) -> None:
        self.batches_lost += len(batches)
        self.items_lost += item_count

    def _sent(self, batches: list[tuple[str, bytes]], item_count: int) -> None:
        self.batches_sent += len(batches)
        self.items_sent += item_count
        if self.health is not LinkHealth.UP:
            self._set_health(LinkHealth.UP, None)

    def _set_health(self, health: LinkHealth, exc: Exception | None) -> None:
        if health is self.health:
            return
        self.health = health
        if exc is not None:
            log.warning("publishing to Redis failed, batches are counted as lost: %s", exc)
        else:
            log.warning("publishing to Redis works again (%d batches lost)", self.batches_lost)

    async def close(self) -> None:
        """Send what is pending (a drain's last words: handovers), each step bounded."""
        self._closing = True
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()
        await self._finish(self._flushing)
        self._flushing = None
        if self._pending:
            await self._finish(self._publish(*self._take()))
        self._pending.clear()
        self._since.clear()

    @staticmethod
    async def _finish(task: asyncio.Task[None] | None) -> None:
        """Wait briefly for a publish in flight; cancel it if Redis does not answer."""
        if task is None:
            return
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
