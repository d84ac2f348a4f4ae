"""Per-connection token buckets, the byte budget, and the flood rule of the contract (section 4)."""

from __future__ import annotations

import time

BUDGET_EXEMPT_SIZE = 64
"""Frames of at most this many bytes pass an exhausted byte budget (the message buckets
still count them): they cost nothing to decode, and a ``leave`` must never be refused."""


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("_last", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._last = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        tokens = self.tokens + (now - self._last) * self.rate
        self._last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens >= amount:
            self.tokens = tokens - amount
            return True
        self.tokens = tokens
        return False

    def full(self, now: float) -> bool:
        """Whether it has refilled to its burst by ``now`` (then it is as good as a new one)."""
        return self.tokens + (now - self._last) * self.rate >= self.burst


class ByteBudget(TokenBucket):
    """``rate`` bytes per second, at most ``burst`` saved up: bounds what a connection's
    frames cost to decode, which counting messages does not (a 64 KiB input is one message).

    While the budget lasts a frame costs one subtraction: the clock is read and the refill
    computed only when a frame does not fit. Refilling that late also credits time the budget
    sat full, so after a quiet spell a client may spend up to two bursts at once; under a
    steady flood it is exact.
    """

    __slots__ = ()

    def spend(self, size: int) -> bool:
        """The frame fits (and is paid for). ``Connection.handle_frame`` inlines the first
        three lines: this runs for every frame a client sends."""
        tokens = self.tokens - size
        if tokens >= 0.0:
            self.tokens = tokens
            return True
        return self.take(time.monotonic(), size)


class FloodGuard:
    """Decides when a refused sender is told so, and when it has flooded long enough to close.

    At most one ``rate_limited`` error a second; a client refused in every second for
    ``close_after`` seconds (no second without a refusal) is closed with 1008.
    """

    __slots__ = ("_close_after", "_last_error", "_last_refusal", "_streak_start")

    def __init__(self, close_after: float) -> None:
        self._close_after = close_after
        self._streak_start: float | None = None
        self._last_refusal = float("-inf")
        self._last_error = float("-inf")

    def refused(self, now: float) -> tuple[bool, bool]:
        """Record a refusal; returns (send an error now, close the connection now)."""
        if self._streak_start is None or now - self._last_refusal > 1.0:
            self._streak_start = now
        self._last_refusal = now
        tell = now - self._last_error >= 1.0
        if tell:
            self._last_error = now
        return tell, now - self._streak_start >= self._close_after
