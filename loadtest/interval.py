"""What a driver process counts during one second, and how the parent adds them up.

Workers reset one `IntervalStats` in place every second (players hold a direct reference,
so counting is one attribute increment) and send its plain-data form to the parent, which
merges the workers' parts per second and over the measurement window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from tickrelay.loadtest.stats import Histogram

COUNTERS: tuple[str, ...] = (
    "connects_ok",
    "connects_failed",
    "resumes_ok",
    "resumes_failed",
    "states",
    "other_msgs",
    "rx_bytes",
    "inputs",
    "inputs_skipped",
    "lost_inputs",
    "unacked",
    "skipped_ticks",
    "base_mismatches",
    "sender_late",
)
HISTOGRAMS: tuple[str, ...] = (
    "connect_time",
    "resume_time",
    "latency",
    "latency_slow",
    "gaps",
    "gaps_slow",
    "loop_lag",
)
#: Values that are levels at the end of the second (summed across workers, not over time).
GAUGES: tuple[str, ...] = ("connected",)


class IntervalStats:
    """Counters, histograms and tallies of one second (or, merged, of many)."""

    def __init__(self) -> None:
        self.connects_ok = 0
        self.connects_failed = 0
        self.resumes_ok = 0
        self.resumes_failed = 0
        self.states = 0
        self.other_msgs = 0
        self.rx_bytes = 0
        self.inputs = 0
        self.inputs_skipped = 0
        self.lost_inputs = 0
        self.unacked = 0
        self.skipped_ticks = 0
        self.base_mismatches = 0
        self.sender_late = 0
        self.connect_time = Histogram()
        self.resume_time = Histogram()
        self.latency = Histogram()
        self.latency_slow = Histogram()
        self.gaps = Histogram()
        self.gaps_slow = Histogram()
        self.loop_lag = Histogram()
        self.closes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.connected = 0
        self.cpu: dict[str, float] = {}

    def snapshot_and_reset(self) -> dict[str, Any]:
        """Plain-data copy of this second, then start the next one from zero."""
        data = self.to_dict()
        connected, cpu = self.connected, self.cpu
        self.__init__()  # type: ignore[misc]
        self.connected, self.cpu = connected, cpu
        return data

    def to_dict(self) -> dict[str, Any]:
        """Plain data (pickles across processes, serialises to JSON)."""
        d: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS + GAUGES}
        for name in HISTOGRAMS:
            d[name] = getattr(self, name).to_dict()
        d["closes"] = dict(self.closes)
        d["errors"] = dict(self.errors)
        d["cpu"] = dict(self.cpu)
        return d

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add one `to_dict()` part (another worker's, or another second's)."""
        for name in COUNTERS + GAUGES:
            setattr(self, name, getattr(self, name) + int(data.get(name, 0)))
        for name in HISTOGRAMS:
            if name in data:
                getattr(self, name).merge(data[name])
        self.closes.update(data.get("closes", {}))
        self.errors.update(data.get("errors", {}))
        for k, v in data.get("cpu", {}).items():
            self.cpu[k] = self.cpu.get(k, 0.0) + float(v)

    @classmethod
    def merged(cls, parts: Iterable[Mapping[str, Any]]) -> IntervalStats:
        """Sum of several `to_dict()` parts."""
        out = cls()
        for p in parts:
            out.merge(p)
        return out
