"""Process-wide figures: ticks, connections, joins, closes. Cheap to record.

Everything here is recorded as plain ints and floats on the event loop, never through
Prometheus objects: a ``prometheus_client`` histogram takes a lock per observation and costs
about 1.5 µs, several times what the tick pays here (a bisect and two additions). The
exposition (``server/exposition.py``) turns these figures into Prometheus families at
scrape time, so a scrape pays for the formatting and the tick does not.

Lag and duration also keep a bounded window of recent samples, for the percentiles that
``/stats`` reports.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickrelay.server.connection import Connection
    from tickrelay.server.wire import StateFrame

SECONDS_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Tick lag, tick duration and input-to-ack: a 20 Hz tick has 50 ms; lag above it is late."""
BYTES_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
"""State message sizes: a small delta to a full snapshot of a room at its 256 KiB bound."""


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Buckets:
    """A histogram's counts: one slot per upper bound (``le``, inclusive) and one for +Inf.

    Not cumulative: the exposition sums them. Only the event loop writes, so no lock;
    ``TickStats`` adds to them inline (``counts[bisect_left(bounds, value)] += 1``).
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass
class TickStats:
    """Per tick: lag (how late it started), duration (its step), the wait of its inputs,
    and the size of the state it sent."""

    window: int = 4096
    lags: deque[float] = field(default_factory=deque)
    durations: deque[float] = field(default_factory=deque)
    ticks: int = 0
    max_lag: float = 0.0
    lag_buckets: Buckets = field(default_factory=lambda: Buckets(SECONDS_BUCKETS))
    duration_buckets: Buckets = field(default_factory=lambda: Buckets(SECONDS_BUCKETS))
    input_wait_buckets: Buckets = field(default_factory=lambda: Buckets(SECONDS_BUCKETS))
    state_bytes_buckets: Buckets = field(default_factory=lambda: Buckets(BYTES_BUCKETS))

    def __post_init__(self) -> None:
        self.lags = deque(maxlen=self.window)
        self.durations = deque(maxlen=self.window)

    def record(self, lag: float, duration: float) -> None:
        # Once per tick: Buckets.observe inlined (a method call per figure is half the cost).
        self.ticks += 1
        self.lags.append(lag)
        self.durations.append(duration)
        buckets = self.lag_buckets
        buckets.counts[bisect_left(SECONDS_BUCKETS, lag)] += 1
        buckets.sum += lag
        buckets = self.duration_buckets
        buckets.counts[bisect_left(SECONDS_BUCKETS, duration)] += 1
        buckets.sum += duration
        if lag > self.max_lag:
            self.max_lag = lag

    def inputs_waited(self, seconds: float) -> None:
        """A tick applied inputs: the first of them arrived ``seconds`` before its end."""
        buckets = self.input_wait_buckets
        buckets.counts[bisect_left(SECONDS_BUCKETS, seconds)] += 1
        buckets.sum += seconds

    def state_sent(self, frame: StateFrame) -> None:
        """The size of the tick's state message, in the encoding its fan-out made."""
        size = frame.encoded_size
        if size is not None:
            buckets = self.state_bytes_buckets
            buckets.counts[bisect_left(BYTES_BUCKETS, size)] += 1
            buckets.sum += size

    def summary(self) -> dict[str, float]:
        lags = list(self.lags)
        durations = list(self.durations)
        return {
            "ticks": self.ticks,
            "lag_p50_ms": percentile(lags, 0.5) * 1000,
            "lag_p99_ms": percentile(lags, 0.99) * 1000,
            "lag_max_ms": self.max_lag * 1000,
            "duration_p50_ms": percentile(durations, 0.5) * 1000,
            "duration_p99_ms": percentile(durations, 0.99) * 1000,
        }


@dataclass
class Outgoing:
    """Messages written to clients, summed over connections at scrape time.

    Each connection's outbox counts its own (plain ints on the per-message path); a
    connection that ends adds its counts here, so a total never goes down.
    """

    messages: int = 0
    states: int = 0
    skipped_states: int = 0


@dataclass
class Metrics:
    """Everything /stats and /metrics report for this worker."""

    ticks: TickStats = field(default_factory=TickStats)
    connections: int = 0
    connections_total: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    joins: int = 0
    resumes: int = 0
    drops: int = 0
    # Closes the server decided after a join (4010, 4011, 4013, 1008, ...), by code.
    closed: dict[int, int] = field(default_factory=dict)
    # Connections aborted because their write buffer stayed above high water.
    slow_consumer_drops: int = 0
    live: set[Connection] = field(default_factory=set)
    ended: Outgoing = field(default_factory=Outgoing)

    def refuse(self, code: int) -> None:
        self.refused[code] = self.refused.get(code, 0) + 1

    def opened(self, conn: Connection) -> None:
        self.connections += 1
        self.connections_total += 1
        self.live.add(conn)

    def joined(self, resumed: bool) -> None:
        self.joins += 1
        if resumed:
            self.resumes += 1

    def finished(self, conn: Connection, joined: bool, dropped: bool) -> None:
        """A connection is gone: its counts move to the totals, its ending is counted."""
        self.connections -= 1
        self.live.discard(conn)
        outbox = conn.outbox
        ended = self.ended
        ended.messages += outbox.sent_messages
        ended.states += outbox.sent_states
        ended.skipped_states += outbox.skipped_states
        if not joined:
            return
        code = conn.close_code
        if code is not None:
            self.closed[code] = self.closed.get(code, 0) + 1
        if dropped:
            self.drops += 1
        if conn.handle is not None and conn.handle.slow_consumer_dropped:
            self.slow_consumer_drops += 1

    def outgoing(self) -> Outgoing:
        """Totals over the ended connections and the live ones, read now."""
        ended = self.ended
        total = Outgoing(ended.messages, ended.states, ended.skipped_states)
        for conn in self.live:
            outbox = conn.outbox
            total.messages += outbox.sent_messages
            total.states += outbox.sent_states
            total.skipped_states += outbox.skipped_states
        return total
