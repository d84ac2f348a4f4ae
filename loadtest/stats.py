"""Mergeable latency histograms and percentile helpers.

Driver processes cannot ship every latency sample to the parent (tens of thousands per
second), so each one records into a log-linear histogram (HDR-like, < 0.8 % relative error)
that is a sparse ``{bucket: count}`` dict: cheap to update, to pickle and to merge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

#: Values below this many microseconds get one bucket each; above, 128 buckets per octave.
_LINEAR = 256
_SUB = 128


def bucket_index(us: int) -> int:
    """Bucket of a non-negative integer value (microseconds by convention)."""
    if us < _LINEAR:
        return us if us > 0 else 0
    shift = us.bit_length() - 8
    return shift * _SUB + (us >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Inclusive lower and exclusive upper value of a bucket."""
    if index < _LINEAR:
        return index, index + 1
    shift = index // _SUB - 1
    mantissa = index - shift * _SUB
    return mantissa << shift, (mantissa + 1) << shift


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none).

    Nearest-rank (not interpolation) because it always returns a value that was really
    observed, which is what "p99 latency" means to someone reading a report.
    """
    if not sorted_values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile out of range: {p}")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class Histogram:
    """Log-linear histogram of durations, recorded in seconds, stored in microseconds."""

    __slots__ = ("buckets", "count", "max_us", "total_us")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total_us = 0
        self.max_us = 0

    def record(self, seconds: float) -> None:
        """Add one duration (negative values, from clock jitter, count as zero)."""
        us = int(seconds * 1_000_000 + 0.5)  # rounded: 0.05 s is 50000 µs, not 49999
        if us < 0:
            us = 0
        i = bucket_index(us)
        b = self.buckets
        b[i] = b.get(i, 0) + 1
        self.count += 1
        self.total_us += us
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: Histogram | Mapping[str, object]) -> None:
        """Add another histogram (or its `to_dict()` form) into this one."""
        if isinstance(other, Histogram):
            buckets, count, total, mx = other.buckets, other.count, other.total_us, other.max_us
        else:
            buckets = {int(k): int(v) for k, v in other["buckets"].items()}  # type: ignore[union-attr]
            count = int(other["count"])  # type: ignore[call-overload]
            total = int(other["total_us"])  # type: ignore[call-overload]
            mx = int(other["max_us"])  # type: ignore[call-overload]
        b = self.buckets
        for i, n in buckets.items():
            b[i] = b.get(i, 0) + n
        self.count += count
        self.total_us += total
        self.max_us = max(self.max_us, mx)

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        """A new histogram holding the sum of `parts`."""
        h = cls()
        for p in parts:
            h.merge(p)
        return h

    def percentile_us(self, p: float) -> int | None:
        """Nearest-rank percentile in microseconds: the midpoint of the bucket holding it,
        clamped to the largest value seen (so p100 is exactly the max)."""
        if self.count == 0:
            return None
        if not 0 <= p <= 100:
            raise ValueError(f"percentile out of range: {p}")
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for i in sorted(self.buckets):
            seen += self.buckets[i]
            if seen >= rank:
                lo, hi = bucket_bounds(i)
                return min((lo + hi - 1) // 2, self.max_us)
        return self.max_us

    def percentile_ms(self, p: float) -> float | None:
        """Like `percentile_us`, in milliseconds rounded to 0.01 ms."""
        us = self.percentile_us(p)
        return None if us is None else round(us / 1000, 2)

    def mean_ms(self) -> float | None:
        """Arithmetic mean in milliseconds."""
        return None if self.count == 0 else round(self.total_us / self.count / 1000, 2)

    def summary_ms(self, ps: Sequence[float] = (50, 90, 99)) -> dict[str, float | int | None]:
        """The figures a report shows: count, mean, the given percentiles and max (ms)."""
        out: dict[str, float | int | None] = {"count": self.count, "mean": self.mean_ms()}
        for p in ps:
            out[f"p{p:g}"] = self.percentile_ms(p)
        out["max"] = None if self.count == 0 else round(self.max_us / 1000, 2)
        return out

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for pipes and JSON."""
        return {
            "buckets": dict(self.buckets),
            "count": self.count,
            "total_us": self.total_us,
            "max_us": self.max_us,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Histogram:
        """Inverse of `to_dict`."""
        h = cls()
        h.merge(data)
        return h
