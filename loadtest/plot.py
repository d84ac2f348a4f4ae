"""PNG plots (matplotlib, Agg backend: no display, safe in CI and in driver processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import ScalarFormatter


def plot_run(report: dict[str, Any], path: str | Path) -> Path:
    """Latency percentiles and rates over time for one run, the measured window shaded."""
    series = report["timeseries"]
    t = [p["t"] + 0.5 for p in series]  # second k is plotted at its middle
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for key, label in (
        ("latency_p50_ms", "p50"),
        ("latency_p90_ms", "p90"),
        ("latency_p99_ms", "p99"),
        ("latency_max_ms", "max"),
    ):
        ax1.plot(t, [p[key] for p in series], marker=".", label=label)
    ax1.set_ylabel("input -> ack latency (ms)")
    ax1.set_yscale("log")
    ax1.yaxis.set_major_formatter(ScalarFormatter())
    ax1.legend(loc="upper left", ncol=4, fontsize="small")
    ax1.grid(True, alpha=0.3)
    ax2.plot(t, [p["states_per_s"] for p in series], label="state msgs/s")
    ax2.plot(t, [p["inputs_per_s"] for p in series], label="inputs/s")
    ax2.set_ylabel("messages / s")
    ax2.set_xlabel("seconds since start")
    ax2.grid(True, alpha=0.3)
    right = ax2.twinx()
    right.plot(t, [p["connected"] for p in series], color="gray", linestyle="--", label="connected")
    right.set_ylabel("connected")
    lines = ax2.get_legend_handles_labels()
    rlines = right.get_legend_handles_labels()
    ax2.legend(lines[0] + rlines[0], lines[1] + rlines[1], loc="upper left", fontsize="small")
    w = report["window"]
    for ax in (ax1, ax2):
        ax.axvspan(w["start_s"], w["end_s"], color="green", alpha=0.08, label="_measured")
    cfg = report["config"]
    title = (
        f"{cfg['url']}: {cfg['rooms']} rooms x {cfg['players']} players, "
        f"{cfg['input_hz']:g} Hz inputs"
    )
    if not report["valid"]:
        title += "  [DRIVER-BOUND: not valid]"
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_bench(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Bench sweep: CPU per message, delivered rate and p99 latency against rooms."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    servers: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        servers.setdefault(r["server"], []).append(r)
    panels = (
        ("cpu_us_per_msg", "server CPU µs per delivered msg", True),
        ("msgs_per_s", "delivered state msgs / s", False),
        ("latency_p99_ms", "input -> ack p99 (ms)", True),
    )
    for ax, (key, label, log) in zip(axes, panels, strict=True):
        for name, pts in servers.items():
            pts = [p for p in pts if p.get(key) is not None]
            if pts:
                ax.plot([p["rooms"] for p in pts], [p[key] for p in pts], marker="o", label=name)
        ax.set_xlabel("rooms of 8 players")
        ax.set_title(label, fontsize="medium")
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
