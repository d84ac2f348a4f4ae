"""Process-wide figures: tick lag and duration, connections, messages. Cheap to record.

Lag and duration keep a bounded window of recent samples so that percentiles can be read
without a histogram library; counters are plain ints.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class TickStats:
    """Recent tick lag (how late a tick started) and duration (how long its step took)."""

    window: int = 4096
    lags: deque[float] = field(default_factory=deque)
    durations: deque[float] = field(default_factory=deque)
    ticks: int = 0
    max_lag: float = 0.0

    def __post_init__(self) -> None:
        self.lags = deque(maxlen=self.window)
        self.durations = deque(maxlen=self.window)

    def record(self, lag: float, duration: float) -> None:
        self.ticks += 1
        self.lags.append(lag)
        self.durations.append(duration)
        if lag > self.max_lag:
            self.max_lag = lag

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
class Metrics:
    """Everything /stats reports for this worker."""

    ticks: TickStats = field(default_factory=TickStats)
    connections: int = 0
    connections_total: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    messages_in: int = 0

    def refuse(self, code: int) -> None:
        self.refused[code] = self.refused.get(code, 0) + 1
