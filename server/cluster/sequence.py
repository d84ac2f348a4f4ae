"""Per-link sequence numbers: what a receiver lost shows as a gap, not as an exception.

The bus reconnects and resubscribes by itself after a Redis restart, and its publishes ask
for no replies, so whatever was published in between is gone without an error. So every
batch from a sender to one destination carries the next number of that link, and the
receiver compares. A sender that restarts has a new boot: its link starts again, which is
a fresh start, not a loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum


class Arrival(Enum):
    NEXT = "next"  # the expected batch
    FIRST = "first"  # the first batch seen on this link (after our start or the sender's)
    GAP = "gap"  # batches were lost before this one
    OLD = "old"  # already seen or older: dropped


@dataclass(frozen=True, slots=True)
class Received:
    arrival: Arrival
    lost: int = 0  # batches missing before this one (GAP only)


class OutgoingSequences:
    """The sender's side: the next number for each destination."""

    def __init__(self) -> None:
        self._counters: dict[str, Iterator[int]] = {}

    def next(self, destination: str) -> int:
        counter = self._counters.get(destination)
        if counter is None:
            counter = self._counters[destination] = itertools.count(1)
        return next(counter)


class IncomingSequences:
    """The receiver's side: the last number seen from each sender's boot."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}  # source -> (boot, last seq)

    def receive(self, source: str, boot: int, seq: int) -> Received:
        known = self._last.get(source)
        if known is None or boot > known[0]:
            self._last[source] = (boot, seq)
            return Received(Arrival.FIRST)
        known_boot, last = known
        if boot < known_boot or seq <= last:
            return Received(Arrival.OLD)
        self._last[source] = (boot, seq)
        if seq == last + 1:
            return Received(Arrival.NEXT)
        return Received(Arrival.GAP, seq - last - 1)

    def forget(self, source: str) -> None:
        """The sender is gone for good (its lease lapsed): no link state kept for it."""
        self._last.pop(source, None)
