"""The in-memory backplane: one worker, no network. Also the reference for the semantics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from tickrelay.server.backplane.base import Backplane, Subscription

_CLOSED = object()


class MemorySubscription(Subscription):
    def __init__(self, backplane: MemoryBackplane, channel: str) -> None:
        self._backplane = backplane
        self._channel = channel
        self._queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                return
            yield item  # type: ignore[misc]

    async def close(self) -> None:
        self._backplane._unsubscribe(self._channel, self)
        self._queue.put_nowait(_CLOSED)


class MemoryBackplane(Backplane):
    def __init__(self) -> None:
        self._channels: dict[str, set[MemorySubscription]] = {}
        self._keys: dict[str, tuple[bytes, float | None]] = {}

    @property
    def healthy(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for subscriptions in list(self._channels.values()):
            for subscription in list(subscriptions):
                await subscription.close()

    async def publish(self, channel: str, data: bytes) -> None:
        for subscription in self._channels.get(channel, ()):
            subscription.put(data)

    async def subscribe(self, channel: str) -> Subscription:
        subscription = MemorySubscription(self, channel)
        self._channels.setdefault(channel, set()).add(subscription)
        return subscription

    def _unsubscribe(self, channel: str, subscription: MemorySubscription) -> None:
        subscriptions = self._channels.get(channel)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._channels[channel]

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, only_new: bool = False
    ) -> bool:
        if only_new and await self.get(key) is not None:
            return False
        expires = time.monotonic() + ttl if ttl is not None else None
        self._keys[key] = (value, expires)
        return True

    async def get(self, key: str) -> bytes | None:
        entry = self._keys.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._keys[key]
            return None
        return value

    async def delete(self, key: str) -> None:
        self._keys.pop(key, None)
