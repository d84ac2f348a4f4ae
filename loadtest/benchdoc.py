"""Bench result tables, for the terminal (rich) and for `docs/PERFORMANCE.md` (Markdown).

Tables are built once as header + string rows and rendered twice, so the terminal and the
doc can never disagree. The doc is regenerated whole except for the hand-written section
"What limits each configuration" (between markers), which is carried over.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

Table = tuple[str, list[str], list[list[str]]]

LIMITS_START = "<!-- limits:start -->"
LIMITS_END = "<!-- limits:end -->"


def _f(v: Any, fmt: str = "{:.1f}", none: str = "n/a") -> str:
    return none if v is None else fmt.format(v)


def _note(r: dict[str, Any]) -> str:
    notes = []
    if r["driver_bound"]:
        notes.append("DRIVER-BOUND (not valid): " + "; ".join(r["driver_reasons"]))
    elif r["saturated"]:
        notes.append("saturated: " + r["saturated"])
    bound = r.get("rounds_driver_bound") or 0
    if bound and not r["driver_bound"]:
        notes.append(f"{bound} of {len(r['rounds_cpu_us_per_msg'])} rounds driver-bound")
    return "; ".join(notes)


def _p99_cell(r: dict[str, Any]) -> str:
    """The row's p99, and with repeated rounds the range over all of them."""
    rounds = [v for v in r.get("rounds_p99_ms") or () if v is not None]
    if len(rounds) < 2:
        return _f(r["latency_p99_ms"])
    return f"{_f(r['latency_p99_ms'])} ({min(rounds):.0f}-{max(rounds):.0f})"


def sweep_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The main table: one line per server and load."""
    head = [
        "server",
        "rooms",
        "players",
        "msgs/s",
        "server CPU",
        "CPU µs/msg",
        "B/msg",
        "p50 ms",
        "p99 ms",
        "RSS MB",
        "KB/player",
        "tick lag p99",
        "note",
    ]
    body = [
        [
            r["server"],
            str(r["rooms"]),
            str(r["players"]),
            _f(r["msgs_per_s"], "{:.0f}"),
            _f(r["server_cpu"], "{:.0%}"),
            _f(r["cpu_us_per_msg"]),
            _f(r["bytes_per_msg"], "{:.0f}"),
            _f(r["latency_p50_ms"]),
            _p99_cell(r),
            _f(r["rss_mb"]),
            _f(r["rss_per_player_kb"]),
            _f(r["tick_lag_p99_ms"], "{:.1f} ms"),
            _note(r),
        ]
        for r in rows
    ]
    return "Load sweep (rooms of 8 players, 20 Hz inputs)", head, body


def _ratio_cell(row: dict[str, Any], ref: dict[str, Any]) -> str:
    """The ratio of CPU per message; with repeated rounds, the median of the per-round
    ratios (rounds pair up: the servers took turns in each) and their range."""
    mine = row.get("rounds_cpu_us_per_msg") or [row["cpu_us_per_msg"]]
    theirs = ref.get("rounds_cpu_us_per_msg") or [ref["cpu_us_per_msg"]]
    ratios = sorted(a / b for a, b in zip(mine, theirs, strict=False) if a and b)
    if len(ratios) < 2:
        return f"{row['cpu_us_per_msg'] / ref['cpu_us_per_msg']:.2f}x"
    median = statistics.median(ratios)
    return f"{median:.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def ratio_table(rows: Sequence[dict[str, Any]], reference: str) -> Table | None:
    """Server CPU per delivered message relative to `reference`, per load."""
    ref = {r["rooms"]: r for r in rows if r["server"] == reference and r["cpu_us_per_msg"]}
    if not ref:
        return None
    loads = sorted(ref)
    servers = list(dict.fromkeys(r["server"] for r in rows))
    body = []
    for name in servers:
        line = [name]
        for rooms in loads:
            r = next((x for x in rows if x["server"] == name and x["rooms"] == rooms), None)
            if r is None or not r["cpu_us_per_msg"]:
                line.append("-")
            else:
                line.append(_ratio_cell(r, ref[rooms]))
        body.append(line)
    title = f"Server CPU per delivered message relative to {reference} (lower is cheaper)"
    return title, ["server", *(f"{n} rooms" for n in loads)], body


def stall_table(items: Sequence[dict[str, Any]]) -> Table:
    """Healthy players with and without 10 % stalled players in the room."""
    head = [
        "server",
        "rooms",
        "healthy p50 ms",
        "healthy p99 ms",
        "msgs/s",
        "RSS MB",
        "server CPU",
        "stalled players' closes",
        "note",
    ]
    body = []
    for it in items:
        b, s = it["base"], it["stalled"]
        body.append(
            [
                it["server"],
                str(s["rooms"]),
                f"{_f(b['latency_p50_ms'])} -> {_f(s['latency_p50_ms'])}",
                f"{_f(b['latency_p99_ms'])} -> {_f(s['latency_p99_ms'])}",
                f"{_f(b['msgs_per_s'], '{:.0f}')} -> {_f(s['msgs_per_s'], '{:.0f}')}",
                f"{_f(b['rss_mb'])} -> {_f(s['rss_mb'])}",
                f"{_f(b['server_cpu'], '{:.0%}')} -> {_f(s['server_cpu'], '{:.0%}')}",
                ", ".join(f"{k}: {v}" for k, v in s["closes"].items()) or "none",
                _note(s),
            ]
        )
    return "Stalled players (without -> with; latency of the healthy players only)", head, body


def idle_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Memory per mostly idle connection."""
    head = [
        "server",
        "connections",
        "connected",
        "input Hz",
        "RSS MB",
        "KB/connection",
        "server CPU",
        "msgs/s",
        "CPU µs/msg",
        "p99 ms",
        "note",
    ]
    body = [
        [
            r["server"],
            str(r["players"]),
            str(r["connected"]),
            _f(r["input_hz"], "{:g}"),
            _f(r["rss_mb"]),
            _f(r["rss_per_player_kb"]),
            _f(r["server_cpu"], "{:.0%}"),
            _f(r["msgs_per_s"], "{:.0f}"),
            _f(r["cpu_us_per_msg"]),
            _f(r["latency_p99_ms"]),
            _note(r),
        ]
        for r in rows
    ]
    return "Mostly idle connections", head, body


def all_tables(out: dict[str, Any]) -> list[Table]:
    tables: list[Table] = [sweep_table(out["sweep"])] if out["sweep"] else []
    for ref in ("floor", "tutorial"):
        t = ratio_table(out["sweep"], ref)
        if t is not None:
            tables.append(t)
    if out["stall"]:
        tables.append(stall_table(out["stall"]))
    if out["idle"]:
        tables.append(idle_table(out["idle"]))
    return tables


def print_tables(out: dict[str, Any], console: Console) -> None:
    """Terminal rendering."""
    for title, head, body in all_tables(out):
        t = RichTable(title=title)
        for h in head:
            t.add_column(h, justify="left" if h in ("server", "note") else "right")
        for line in body:
            t.add_row(*line)
        console.print(t)
    for name, reason in out["skipped"].items():
        console.print(f"[yellow]{name} skipped: {reason}[/]")


def markdown_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def _limits_section(old: str | None, servers: Sequence[str]) -> str:
    if old and LIMITS_START in old and LIMITS_END in old:
        return old[old.index(LIMITS_START) : old.index(LIMITS_END) + len(LIMITS_END)]
    parts = [LIMITS_START, ""]
    for name in servers:
        parts += [
            f"### {name}",
            "",
            "_TODO: fill from a py-spy profile at saturation, e.g._ "
            f"`py-spy record -o {name}.svg --pid <server pid> --duration 10` "
            "_during the last load step: where the time goes (framing, encoding, "
            "send calls, the tick loop, the event loop itself) and what would move the limit._",
            "",
        ]
    parts.append(LIMITS_END)
    return "\n".join(parts)


def write_doc(path: Path, out: dict[str, Any], plot: Path) -> None:
    """(Re)generate the Markdown report, keeping the hand-written limits section."""
    old = path.read_text() if path.exists() else None
    m, o = out["machine"], out["options"]
    servers = list(dict.fromkeys([r["server"] for r in out["sweep"]]))
    doc = [
        "# Performance",
        "",
        "<!-- Generated by `tickrelay-loadtest bench`; edit only the section between the "
        "limits markers, everything else is overwritten on the next run. -->",
        "",
        f"Measured {out['started_at'][:19].replace('T', ' ')} UTC in {out['seconds']:.0f} s. "
        "Reproduce with:",
        "",
        "```sh",
        out["command"],
        "```",
        "",
        "## Setup",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, load average before the run "
        f"{' / '.join(str(x) for x in m['loadavg_before'])}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + ".",
        f"- Pinning: {m['pinning']}. Each load step starts a fresh server process.",
        f"- Workload: rooms of {o['players']} players sending {o['rate']:g} inputs/s "
        "(random walk), ticks at 20 Hz; connects spread over at most "
        f"{o['ramp']:g} s, {o['warmup']:g} s warm-up, then {o['measure']:g} s measured. "
        f"A server's sweep stops at the first step where its CPU reaches "
        f"{o['saturation_cpu']:.0%} of its core or p99 exceeds {o['saturation_p99_ms']:g} ms.",
        "- Figures (measured window only): *server CPU* is the server process tree's CPU time "
        "(from /proc via psutil) over the window's wall time, in cores; *CPU µs/msg* is that "
        "CPU time divided by the state messages the driver received in the window; *B/msg* "
        "is wire bytes per message received; *p50/p99* is input-to-ack latency of healthy "
        "players (from sending `seq` N to the first state message acking >= N); *KB/player* "
        "is the growth of the server's RSS from idle to the window's end, per connected "
        "player; *tick lag p99* comes from the server's `GET /stats` (n/a when absent).",
        "- `tutorial` sends one message per input to every member (8x the messages of the "
        "ticked servers for the same inputs), which makes its CPU per message look cheap: "
        "compare where each server saturates and its p99 as well.",
        f"- Stalled players stop reading right after `welcome`, {o.get('stall_warmup', 40.0):g} s "
        "before the window opens (the server's kernel absorbs a few hundred KB per socket "
        "before the server itself sees any backpressure); they use a small receive buffer "
        "and a 1448-byte MSS, as over a real network.",
        "- Latency includes inputs never acked by the window's end, at their age then (so a "
        "server that stops answering cannot look fast).",
        "- A step marked DRIVER-BOUND had the load generator at its limit: its figures "
        "measure the driver, not the server.",
        f"- Each load step ran {o.get('repeat', 1)} time(s), the servers taking turns in each "
        "round; a sweep row is the round with the median CPU µs/msg among the rounds whose "
        "driver kept up, and with more than one round the p99 shows the range over all "
        "rounds in brackets and a ratio is the median of the per-round ratios with their "
        "range.",
        "",
        "## Results",
        "",
    ]
    for title, head, body in all_tables(out):
        doc += [f"### {title}", "", markdown_table(head, body), ""]
    if out["skipped"]:
        doc += ["Skipped: " + "; ".join(f"`{k}`: {v}" for k, v in out["skipped"].items()), ""]
    rel = os.path.relpath(plot, path.parent)
    doc += [
        f"![CPU per message, delivered rate and p99 latency against load]({rel})",
        "",
        "## What limits each configuration",
        "",
        _limits_section(old, servers),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(doc))
