"""The backplane interface, in the spirit of encode/broadcaster.

Rooms never see it. The registry uses it to publish room frames and presence on channels,
to read other workers' messages from a subscription, and to keep short-lived keys (room
ownership leases, the room directory, resume tokens) that every worker can read. The
in-memory implementation serves one worker; a Redis one serves many.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator


class Subscription(ABC):
    """Messages published on one channel after ``subscribe`` returned."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def close(self) -> None: ...


class Backplane(ABC):
    """Pub/sub plus expiring keys, shared by every worker of a deployment."""

    @property
    @abstractmethod
    def healthy(self) -> bool:
        """False while the backplane cannot be reached (the worker is then not ready)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, data: bytes) -> None: ...

    @abstractmethod
    async def subscribe(self, channel: str) -> Subscription: ...

    @abstractmethod
    async def set(
        self, key: str, value: bytes, ttl: float | None = None, only_new: bool = False
    ) -> bool:
        """Store ``value``; with ``only_new`` only if absent (a lease). True if stored."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...
