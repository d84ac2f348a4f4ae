"""Live one-screen progress during a run (rich), refreshed once per second by the runner.

No auto-refresh thread: the display is redrawn only when a second's stats arrive, so it
costs the driver's parent process next to nothing.
"""

from __future__ import annotations

from types import TracebackType

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tickrelay.loadtest.config import LoadConfig
from tickrelay.loadtest.interval import IntervalStats


class LiveProgress:
    """Context manager; pass `update` as the runner's `on_interval`."""

    def __init__(self, cfg: LoadConfig, console: Console) -> None:
        self.cfg = cfg
        self.live = Live(console=console, auto_refresh=False, transient=False)
        self.errors = 0
        self.closes = 0

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.__exit__(exc_type, exc, tb)

    def phase(self, k: int) -> str:
        """Which part of the run second `k` belongs to."""
        start, end = self.cfg.window
        if k < self.cfg.ramp_seconds:
            return "ramp-up"
        if k < start:
            return "warm-up"
        return f"measuring {k - start + 1}/{end - start}" if k < end else "closing"

    def update(self, k: int, s: IntervalStats) -> None:
        """Redraw with second `k`'s figures (the shutdown second is not shown)."""
        self.errors += sum(s.errors.values())
        self.closes += sum(s.closes.values())
        if k >= self.cfg.window[1]:
            return
        t = Table(
            title=f"t={k + 1:>3}s  {self.phase(k)}",
            box=box.SIMPLE,
            pad_edge=False,
            title_justify="left",
        )
        for col in (
            "conns",
            "states/s",
            "KB/s",
            "inputs/s",
            "ack p50 ms",
            "ack p99 ms",
            "errors",
            "closes",
            "drv CPU",
            "lag p99 ms",
        ):
            t.add_column(col, justify="right", no_wrap=False, overflow="fold")
        p50, p99 = s.latency.percentile_ms(50), s.latency.percentile_ms(99)
        lag = s.loop_lag.percentile_ms(99)
        t.add_row(
            f"{s.connected}/{self.cfg.connections}",
            f"{s.states}",
            f"{s.rx_bytes / 1024:.0f}",
            f"{s.inputs}",
            "-" if p50 is None else f"{p50:.1f}",
            "-" if p99 is None else f"{p99:.1f}",
            str(self.errors),
            str(self.closes),
            f"{sum(s.cpu.values()):.0%}",
            "-" if lag is None else f"{lag:.1f}",
        )
        self.live.update(t, refresh=True)
