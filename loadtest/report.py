"""Turns a `RunResult` into the JSON report and the end-of-run summary table.

The report is the product of a run: other tools (the bench, CI, people comparing runs)
read it, so it holds the config that produced it, the measured-window figures, the
per-second series, and an explicit verdict on whether the driver itself was the bottleneck.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from tickrelay.loadtest.interval import IntervalStats
from tickrelay.loadtest.runner import RunResult
from tickrelay.loadtest.stats import percentile


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def _dist(values: list[int]) -> dict[str, float | None]:
    s = sorted(values)
    return {
        "p50": percentile(s, 50),
        "p99": percentile(s, 99),
        "max": s[-1] if s else None,
        "mean": round(sum(s) / len(s), 2) if s else None,
    }


def driver_verdict(result: RunResult, window: IntervalStats, seconds: float) -> dict[str, Any]:
    """Was the driver the bottleneck? Figures of a driver-bound run measure the driver."""
    th = result.cfg.thresholds
    worker_cpu = {k: round(v / seconds, 3) for k, v in sorted(window.cpu.items())}
    parent_cpu = round(result.parent_cpu / seconds, 3) if seconds else 0.0
    total = sum(worker_cpu.values()) + parent_cpu
    lag_p99 = window.loop_lag.percentile_ms(99)
    reasons: list[str] = []
    for name, frac in worker_cpu.items():
        if frac >= th.worker_cpu:
            reasons.append(f"driver worker {name} used {frac:.0%} of a core")
    if total >= th.total_cpu * result.driver_cores:
        reasons.append(
            f"driver processes used {total:.2f} of the {result.driver_cores} core(s) they may use"
        )
    if lag_p99 is not None and lag_p99 >= th.loop_lag_p99_ms:
        reasons.append(f"driver event-loop lag p99 {lag_p99:.0f} ms")
    if window.sender_late:
        reasons.append(f"input sender fell a whole period behind {window.sender_late} time(s)")
    return {
        "workers": result.cfg.workers,
        "cores": result.driver_cores,
        "worker_cpu": worker_cpu,
        "parent_cpu": parent_cpu,
        "total_cpu": round(total, 3),
        "loop_lag_ms": window.loop_lag.summary_ms((50, 99)),
        "sender_late": window.sender_late,
        "bottleneck": bool(reasons),
        "reasons": reasons,
    }


def timeseries(result: RunResult) -> list[dict[str, Any]]:
    """One entry per second from the start to the window's end (the shutdown second is left
    out: it shows the driver closing connections, not the server)."""
    out = []
    end = result.cfg.window[1]
    for k in sorted(result.intervals):
        if k >= end:
            break
        s = result.intervals[k]
        out.append(
            {
                "t": k,
                "connected": s.connected,
                "states_per_s": s.states,
                "bytes_per_s": s.rx_bytes,
                "inputs_per_s": s.inputs,
                "latency_p50_ms": s.latency.percentile_ms(50),
                "latency_p90_ms": s.latency.percentile_ms(90),
                "latency_p99_ms": s.latency.percentile_ms(99),
                "latency_max_ms": s.latency.summary_ms(())["max"],
                "driver_cpu": round(sum(s.cpu.values()), 3),
                "loop_lag_p99_ms": s.loop_lag.percentile_ms(99),
            }
        )
    return out


def build_report(result: RunResult) -> dict[str, Any]:
    """The JSON report of one run (measured-window figures unless said otherwise)."""
    cfg = result.cfg
    start, end = cfg.window
    w = result.window_stats()
    seconds = float(sum(1 for k in range(start, end) if k in result.intervals))
    whole = IntervalStats.merged(s.to_dict() for s in result.intervals.values())
    skipped_run = [n for f in result.finals for n in f["skipped_per_client"]]
    clients = max(1, w.connected - round(cfg.slow.fraction * cfg.rooms * cfg.players))
    msgs = w.states + w.other_msgs
    driver = driver_verdict(result, w, seconds)
    return {
        "tool": "tickrelay-loadtest",
        "format": 1,
        "started_at": dt.datetime.fromtimestamp(result.started_at, dt.UTC).isoformat(),
        "config": cfg.to_dict(),
        "window": {"start_s": start, "end_s": end, "seconds": seconds},
        "connections": {
            "planned": cfg.connections,
            "ok": whole.connects_ok,
            "failed": whole.connects_failed,
            "connected_at_window_end": w.connected,
            "time_ms": whole.connect_time.summary_ms((50, 99)),
            "resumes_ok": whole.resumes_ok,
            "resumes_failed": whole.resumes_failed,
            "resume_time_ms": whole.resume_time.summary_ms((50, 99)),
        },
        "messages": {
            "states": w.states,
            "states_per_s": _rate(w.states, seconds),
            "states_per_client_per_s": _rate(w.states, seconds * max(1, w.connected)),
            "other": w.other_msgs,
            "bytes_per_s": _rate(w.rx_bytes, seconds),
            "bytes_per_msg": round(w.rx_bytes / msgs, 1) if msgs else None,
            "inputs_per_s": _rate(w.inputs, seconds),
            "inputs_skipped": w.inputs_skipped,
            "lost_inputs": whole.lost_inputs,
            "unacked_at_window_end": w.unacked,
        },
        "latency_ms": w.latency.summary_ms((50, 90, 99)),
        "latency_slow_ms": w.latency_slow.summary_ms((50, 90, 99)),
        "gaps_ms": w.gaps.summary_ms((50, 90, 99)),
        "ticks_skipped": {
            "in_window": w.skipped_ticks,
            "per_client_per_s": round(w.skipped_ticks / (seconds * clients), 3) if seconds else 0,
            "per_client_whole_run": _dist(skipped_run),
        },
        "delta_base_mismatches": whole.base_mismatches,
        "closes": dict(sorted(whole.closes.items())),
        "errors": dict(Counter(whole.errors).most_common()),
        "driver": driver,
        "valid": not driver["bottleneck"],
        "timeseries": timeseries(result),
    }


def _ms(v: object) -> str:
    return "n/a" if v is None else f"{v:.1f} ms" if isinstance(v, float) else f"{v} ms"


def _si(v: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}" if math.isfinite(v) else str(v)


def print_summary(report: dict[str, Any], console: Console) -> None:
    """The end-of-run table, then the verdict in plain words."""
    c, m, lat = report["connections"], report["messages"], report["latency_ms"]
    gaps, drv = report["gaps_ms"], report["driver"]
    table = Table(title=f"tickrelay-loadtest: {report['config']['url']}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    rows = [
        ("measured window", f"{report['window']['seconds']:.0f} s"),
        (
            "connections",
            f"{c['ok']} ok / {c['planned']} planned, {c['failed']} failed, "
            f"{c['connected_at_window_end']} connected at window end",
        ),
        ("connect time p50 / p99", f"{_ms(c['time_ms']['p50'])} / {_ms(c['time_ms']['p99'])}"),
        ("state msgs / s", f"{_si(m['states_per_s'])} ({m['states_per_client_per_s']} per client)"),
        ("received / s", f"{_si(m['bytes_per_s'])}B ({m['bytes_per_msg']} B/msg)"),
        (
            "inputs / s",
            f"{_si(m['inputs_per_s'])} ({m['inputs_skipped']} skipped: send buffer full)",
        ),
        (
            "input->ack p50/p90/p99/max",
            " / ".join(_ms(lat[k]) for k in ("p50", "p90", "p99", "max"))
            + (
                f" (incl. {m['unacked_at_window_end']} never acked, at their age)"
                if m["unacked_at_window_end"]
                else ""
            ),
        ),
        ("inter-arrival p50/p99/max", " / ".join(_ms(gaps[k]) for k in ("p50", "p99", "max"))),
        (
            "ticks skipped",
            f"{report['ticks_skipped']['in_window']} in window "
            f"({report['ticks_skipped']['per_client_per_s']} per client per s)",
        ),
    ]
    if report["config"]["slow"]["fraction"] > 0:
        slow = report["latency_slow_ms"]
        rows.append(("slow players' latency p50/p99", f"{_ms(slow['p50'])} / {_ms(slow['p99'])}"))
    if c["resumes_ok"] or c["resumes_failed"]:
        rows.append(("resumes", f"{c['resumes_ok']} resumed, {c['resumes_failed']} not"))
    if report["delta_base_mismatches"]:
        rows.append(("delta base mismatches", str(report["delta_base_mismatches"])))
    rows += [
        ("close codes", ", ".join(f"{k}: {v}" for k, v in report["closes"].items()) or "none"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in list(report["errors"].items())[:6]) or "none"),
        (
            "driver CPU",
            f"{drv['total_cpu']:.0%} of {drv['cores']} core(s) "
            f"(workers {', '.join(f'{v:.0%}' for v in drv['worker_cpu'].values())})",
        ),
        (
            "driver loop lag p99 / max",
            f"{_ms(drv['loop_lag_ms']['p99'])} / {_ms(drv['loop_lag_ms']['max'])}",
        ),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if drv["bottleneck"]:
        console.print(
            "[bold red]The driver was the bottleneck: these figures are NOT valid[/] ("
            + "; ".join(drv["reasons"])
            + "). Use more --workers or a lighter load."
        )
    else:
        console.print("[green]The driver kept up: figures are valid.[/]")
