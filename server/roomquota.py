"""Bounds on making rooms: how many one process holds, how fast one client address makes them.

A room nobody joins still costs memory until its idle timeout, and a join to a random id or a
``POST /matchmake`` with a fresh ``meta`` makes one without credentials. So every creation is
checked against ``max_rooms``, and every creation a client asked for is charged to that
client's address, one token bucket per address: one address then holds at most about
``rate * idle_timeout`` empty rooms.

The address is the ASGI scope's ``client``. uvicorn puts the ``X-Forwarded-For`` address there
only when the peer is a trusted proxy (``forwarded_allow_ips``, loopback by default), so a
client cannot pick the address it is charged to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tickrelay.protocol import CloseCode
from tickrelay.server.ratelimit import TokenBucket
from tickrelay.server.refusal import JoinRefusal

UNKNOWN_ADDRESS = "unknown"
"""What a scope without a client address is charged to (all such scopes share it)."""


class CreationRefused(JoinRefusal):
    """No room may be made now: HTTP ``status`` (503 full, 429 too fast), a join gets 1013."""

    def __init__(self, reason: str, status: int, retry_after: int | None = None) -> None:
        super().__init__(CloseCode.TRY_AGAIN, reason)
        self.status = status
        self.retry_after = retry_after


def client_address(scope: Mapping[str, Any]) -> str:
    """The address a request or a handshake is charged to."""
    client = scope.get("client")
    return client[0] if client else UNKNOWN_ADDRESS


class RoomQuota:
    """Decides whether one more room may be made, and by whom."""

    def __init__(self, max_rooms: int, rate: float, burst: int) -> None:
        self.max_rooms = max_rooms
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._prune_above = 1024

    def check(self, rooms: int, creator: str | None, now: float) -> None:
        """Raise CreationRefused unless a room may be made while ``rooms`` exist. ``creator``
        is the address charged, None for the operator (the admin token is not rate-limited)."""
        if rooms >= self.max_rooms:
            raise CreationRefused(f"server holds its maximum of {self.max_rooms} rooms", 503)
        if creator is None:
            return
        bucket = self._buckets.get(creator)
        if bucket is None:
            self._prune(now)
            bucket = self._buckets[creator] = TokenBucket(self.rate, self.burst, now)
        if not bucket.take(now):
            retry = max(1, math.ceil(1.0 / self.rate))
            raise CreationRefused("creating rooms too fast, try again later", 429, retry)

    def _prune(self, now: float) -> None:
        """Forget the addresses whose bucket has refilled (they are as good as new): the table
        holds only addresses that made rooms lately, at amortised O(1) per new address."""
        if len(self._buckets) < self._prune_above:
            return
        self._buckets = {
            address: bucket for address, bucket in self._buckets.items() if not bucket.full(now)
        }
        self._prune_above = max(1024, 2 * len(self._buckets))
