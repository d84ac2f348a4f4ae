"""`tickrelay-loadtest bench`: every server under test, the same workloads, one table.

Each step starts a fresh server process pinned to CPU 0 (fresh, so that its memory figures
belong to that step only), drives it from CPU 1, samples the server's CPU time and RSS at
the edges of the measured window, and stops it. A server's load sweep stops at the first
step that saturates it (its core ~100 % busy, or p99 > 1 s) or that the driver could not
keep up with. Then the extra scenarios: 10 % stalled players, and many mostly idle
connections. Results go to a JSON file, the terminal, and `docs/PERFORMANCE.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from tickrelay.loadtest.benchdoc import print_tables, write_doc
from tickrelay.loadtest.config import LoadConfig, SlowConfig
from tickrelay.loadtest.metrics import fetch_tick_lag_p99
from tickrelay.loadtest.plot import plot_bench
from tickrelay.loadtest.report import build_report
from tickrelay.loadtest.runner import run_load
from tickrelay.loadtest.servers import (
    SERVERS,
    ServerProcess,
    ServerSpec,
    ServerStartError,
    free_port,
)
from tickrelay.loadtest.worker import raise_nofile_limit

HOST = "127.0.0.1"
SERVER_CPU, DRIVER_CPU = 0, 1


@dataclass(frozen=True)
class BenchOptions:
    """Everything that shapes a bench run (recorded in its JSON and its doc)."""

    servers: tuple[str, ...]
    loads: tuple[int, ...]
    players: int = 8
    rate: float = 20.0
    ramp: float = 10.0
    connect_rate: float = 200.0
    measure: float = 10.0
    warmup: float = 2.0
    workers: int = 1
    repeat: int = 1
    pin: bool = True
    scenarios: tuple[str, ...] = ("stall", "idle")
    stall_rooms: int = 25
    stall_fraction: float = 0.1
    stall_warmup: float = 40.0
    idle_connections: int = 5000
    idle_rate: float = 1.0
    idle_ramp: float = 500.0
    saturation_cpu: float = 0.95
    saturation_p99_ms: float = 1000.0
    out_dir: Path = Path("loadtest-out")
    doc: Path | None = Path("docs/PERFORMANCE.md")


class ServerProbe:
    """Samples the server's CPU, memory and tick lag at the window's edges."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.cpu0 = self.cpu1 = 0.0
        self.t0 = self.t1 = 0.0
        self.rss_end = 0
        self.tick_lag_p99_ms: float | None = None

    def window_start(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = self.server.cpu_seconds()

    def window_end(self) -> None:
        self.t1 = time.monotonic()
        self.cpu1 = self.server.cpu_seconds()
        self.rss_end = self.server.rss_bytes()
        path = self.server.spec.metrics_path
        if path is not None:
            self.tick_lag_p99_ms = fetch_tick_lag_p99(self.server.host, self.server.port, path)


def pin_driver(opts: BenchOptions) -> tuple[bool, str]:
    """Pin this process (and so the driver workers it spawns) to the driver CPU.

    Returns whether pinning is on, and a sentence for the report.
    """
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - non-Linux
        return False, "not pinned (no CPU affinity on this platform)"
    if not opts.pin:
        return False, "not pinned (--no-pin)"
    if not {SERVER_CPU, DRIVER_CPU} <= cpus:
        return False, f"not pinned (CPUs {SERVER_CPU} and {DRIVER_CPU} not both available)"
    os.sched_setaffinity(0, {DRIVER_CPU})
    return True, (
        f"server pinned to CPU {SERVER_CPU} (taskset -c {SERVER_CPU}), driver to CPU {DRIVER_CPU}"
    )


def step_config(opts: BenchOptions, url: str, rooms: int, **changes: Any) -> LoadConfig:
    """The workload of one step: all rooms connected within `opts.ramp` seconds at most."""
    n = rooms * opts.players
    cfg = LoadConfig(
        url=url,
        rooms=rooms,
        players=opts.players,
        input_hz=opts.rate,
        duration=opts.measure,
        ramp=max(opts.connect_rate, n / opts.ramp),
        warmup=opts.warmup,
        workers=opts.workers,
        room_prefix="bench",
    )
    return replace(cfg, **changes)


def _row(
    spec: ServerSpec,
    kind: str,
    cfg: LoadConfig,
    report: dict[str, Any],
    probe: ServerProbe,
    rss0: int,
    exited: bool,
    opts: BenchOptions,
) -> dict[str, Any]:
    window = max(1e-9, probe.t1 - probe.t0)
    cpu = probe.cpu1 - probe.cpu0
    states = report["messages"]["states"]
    connected = report["connections"]["connected_at_window_end"]
    lat = report["latency_ms"]
    row: dict[str, Any] = {
        "server": spec.name,
        "kind": kind,
        "rooms": cfg.rooms,
        "players": cfg.connections,
        "input_hz": cfg.input_hz,
        "connected": connected,
        "connect_failed": report["connections"]["failed"],
        "msgs_per_s": report["messages"]["states_per_s"],
        "server_cpu": round(cpu / window, 3),
        "cpu_us_per_msg": round(cpu * 1e6 / states, 2) if states else None,
        "bytes_per_msg": report["messages"]["bytes_per_msg"],
        "latency_p50_ms": lat["p50"],
        "latency_p99_ms": lat["p99"],
        "latency_slow_p99_ms": report["latency_slow_ms"]["p99"],
        "rss_mb": round(probe.rss_end / 2**20, 1),
        "rss_per_player_kb": (
            round((probe.rss_end - rss0) / connected / 1024, 2) if connected else None
        ),
        "tick_lag_p99_ms": probe.tick_lag_p99_ms,
        "ticks_skipped_per_client_per_s": report["ticks_skipped"]["per_client_per_s"],
        "closes": report["closes"],
        "driver_bound": not report["valid"],
        "driver_reasons": report["driver"]["reasons"],
        "driver_cpu": report["driver"]["total_cpu"],
        "server_exited": exited,
    }
    saturated = []
    if row["server_cpu"] >= opts.saturation_cpu:
        saturated.append(f"server CPU {row['server_cpu']:.0%}")
    if lat["p99"] is not None and lat["p99"] > opts.saturation_p99_ms:
        saturated.append(f"p99 {lat['p99']:.0f} ms")
    if connected < cfg.connections:
        saturated.append(f"{cfg.connections - connected} players not connected")
    if exited:
        saturated.append("server exited")
    row["saturated"] = "; ".join(saturated) or None
    return row


async def run_step(
    opts: BenchOptions, spec: ServerSpec, kind: str, rooms: int, console: Console, **changes: Any
) -> dict[str, Any] | None:
    """One fresh server, one load run; the row of figures (None if the server won't start)."""
    port = free_port(HOST)
    log = opts.out_dir / "logs" / f"{spec.name}-{kind}-{rooms}.log"
    server = ServerProcess(spec, HOST, port, log, opts.pin)
    cfg = step_config(opts, server.url, rooms, **changes)
    console.print(
        f"[bold]{spec.name}[/] {kind}: {cfg.rooms} rooms, {cfg.connections} connections, "
        f"{cfg.input_hz:g} Hz, ~{cfg.window[1]:.0f} s ...",
        end=" ",
    )
    try:
        try:
            server.start()
        except ServerStartError as exc:
            console.print(f"[red]could not start: {exc}[/]")
            return None
        await asyncio.sleep(0.5)
        rss0 = server.rss_bytes()
        probe = ServerProbe(server)
        result = await run_load(cfg, probe=probe)
        exited = server.exited
    finally:
        server.stop()
    report = build_report(result)
    row = _row(spec, kind, cfg, report, probe, rss0, exited, opts)
    row["report"] = report
    note = row["saturated"] or ("DRIVER-BOUND" if row["driver_bound"] else "ok")
    console.print(
        f"{row['msgs_per_s']:.0f} msg/s, {row['cpu_us_per_msg'] or 0:.1f} µs/msg, "
        f"CPU {row['server_cpu']:.0%}, p99 {row['latency_p99_ms']} ms: {note}"
    )
    return row


async def bench(opts: BenchOptions, console: Console) -> dict[str, Any]:
    """All servers, all steps, all scenarios; the bench's full result.

    Servers take turns at each load step (and in each scenario) rather than each running
    its whole sweep in one go: a shared machine drifts in speed over minutes, and taking
    turns keeps that drift out of the ratios between servers.
    """
    results: dict[str, Any] = {"sweep": [], "stall": [], "idle": [], "skipped": {}}
    active: list[str] = []
    for name in opts.servers:
        reason = SERVERS[name].available()
        if reason is None:
            active.append(name)
        else:
            console.print(f"[yellow]{name}: skipped: {reason}[/]")
            results["skipped"][name] = reason
    sweeps: dict[str, list[dict[str, Any]]] = {name: [] for name in active}
    running = list(active)
    for rooms in opts.loads:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in running}
        for _ in range(opts.repeat):
            for name in list(running):
                row = await run_step(opts, SERVERS[name], "load", rooms, console)
                if row is None:
                    results["skipped"][name] = "server did not start"
                    running.remove(name)
                    continue
                rounds[name].append(row)
        for name in list(running):
            row = median_row(rounds[name])
            sweeps[name].append(row)
            if row["saturated"] or row["driver_bound"]:
                running.remove(name)
    active = [name for name in active if name not in results["skipped"]]
    for name in active:
        results["sweep"].extend(sweeps[name])
    if "stall" in opts.scenarios:
        for name in active:
            stall = await stall_pair(opts, name, sweeps[name], console)
            if stall is not None:
                results["stall"].append(stall)
    if "idle" in opts.scenarios:
        rooms = math.ceil(opts.idle_connections / opts.players)
        for name in active:
            idle = await run_step(
                opts,
                SERVERS[name],
                "idle",
                rooms,
                console,
                input_hz=opts.idle_rate,
                ramp=opts.idle_ramp,
            )
            if idle is not None:
                results["idle"].append(idle)
    return results


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median CPU per message, carrying every round's figures.

    One run of a few seconds on a shared 2-core machine moves by several percent from run
    to run; repeating a step and keeping the median (with the spread, for the ratios and
    the p99) says how much of a difference between servers is real. Rounds whose driver
    was the bottleneck are passed over while a valid round exists.
    """

    def cost(row: dict[str, Any]) -> float:
        return row["cpu_us_per_msg"] if row["cpu_us_per_msg"] is not None else math.inf

    valid = [r for r in rows if not r["driver_bound"]] or rows
    row = dict(sorted(valid, key=cost)[(len(valid) - 1) // 2])
    row["rounds_cpu_us_per_msg"] = [r["cpu_us_per_msg"] for r in rows]
    row["rounds_p99_ms"] = [r["latency_p99_ms"] for r in rows]
    row["rounds_driver_bound"] = sum(1 for r in rows if r["driver_bound"])
    return row


async def stall_pair(
    opts: BenchOptions, name: str, sweep: list[dict[str, Any]], console: Console
) -> dict[str, Any] | None:
    """The same load without and with stalled players (the sweep's row when it has one)."""
    spec = SERVERS[name]
    base = next((r for r in sweep if r["rooms"] == opts.stall_rooms), None)
    if base is None:
        base = await run_step(opts, spec, "load", opts.stall_rooms, console)
    slow = SlowConfig(fraction=opts.stall_fraction, mode="stall", stall=0.0)
    stalled = await run_step(
        opts,
        spec,
        "stall",
        opts.stall_rooms,
        console,
        slow=slow,
        warmup=opts.stall_warmup,
    )
    if base is None or stalled is None:
        return None
    return {"server": name, "base": base, "stalled": stalled}


def machine_info(pinning: str) -> dict[str, Any]:
    """What the figures were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("websockets", "uvicorn", "uvloop", "fastapi", "msgpack"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "missing"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "packages": versions,
        "pinning": pinning,
    }


def bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tickrelay-loadtest bench",
        description="Compare relay servers under the same workloads (one process each, "
        "pinned to one core; the driver on the other).",
    )
    default_servers = ",".join(n for n, s in SERVERS.items() if s.default)
    p.add_argument(
        "--servers",
        default=default_servers,
        help=f"comma-separated, from: {', '.join(SERVERS)} (default {default_servers})",
    )
    p.add_argument(
        "--loads", default="25,63,125,250", help="rooms per step (default 25,63,125,250)"
    )
    p.add_argument("--players", type=int, default=8, help="players per room")
    p.add_argument("--rate", type=float, default=20.0, help="inputs per second per player")
    p.add_argument("--ramp", type=float, default=10.0, help="max seconds to connect everybody")
    p.add_argument(
        "--connect-rate",
        type=float,
        default=200.0,
        help="connects per second unless that would exceed --ramp",
    )
    p.add_argument("--measure", type=float, default=10.0, help="measured seconds per step")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds between ramp and window")
    p.add_argument("--workers", type=int, default=1, help="driver processes")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of each load step (servers take turns in each round); the "
        "tables show the median round, the ratios the median and range per round",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server and driver")
    p.add_argument("--scenarios", default="stall,idle", help="extra scenarios: stall,idle or none")
    p.add_argument("--stall-rooms", type=int, default=25)
    p.add_argument("--stall-fraction", type=float, default=0.1)
    p.add_argument(
        "--stall-warmup",
        type=float,
        default=40.0,
        help="seconds of stall before the window: the server's kernel buffers "
        "~250 KB per stalled socket before the application feels anything",
    )
    p.add_argument("--idle-connections", type=int, default=5000)
    p.add_argument("--idle-rate", type=float, default=1.0, help="inputs/s of idle players")
    p.add_argument("--idle-ramp", type=float, default=500.0, help="connects/s for the idle run")
    p.add_argument("--saturation-cpu", type=float, default=0.95)
    p.add_argument("--saturation-p99", type=float, default=1000.0, help="ms")
    p.add_argument("--out-dir", type=Path, default=Path("loadtest-out"))
    p.add_argument(
        "--doc",
        type=Path,
        default=Path("docs/PERFORMANCE.md"),
        help="Markdown report to regenerate (plots go to its perf/ folder)",
    )
    p.add_argument("--no-doc", action="store_true", help="do not write the Markdown report")
    return p


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Validate names and numbers."""
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        raise ValueError(f"unknown server(s): {', '.join(unknown)}; known: {', '.join(SERVERS)}")
    scenarios = tuple(s for s in args.scenarios.split(",") if s and s != "none")
    if set(scenarios) - {"stall", "idle"}:
        raise ValueError("scenarios are: stall, idle, none")
    if args.repeat < 1:
        raise ValueError("--repeat must be at least 1")
    return BenchOptions(
        servers=servers,
        loads=tuple(int(x) for x in args.loads.split(",") if x.strip()),
        players=args.players,
        rate=args.rate,
        ramp=args.ramp,
        connect_rate=args.connect_rate,
        measure=args.measure,
        warmup=args.warmup,
        workers=args.workers,
        repeat=args.repeat,
        pin=not args.no_pin,
        scenarios=scenarios,
        stall_rooms=args.stall_rooms,
        stall_fraction=args.stall_fraction,
        stall_warmup=args.stall_warmup,
        idle_connections=args.idle_connections,
        idle_rate=args.idle_rate,
        idle_ramp=args.idle_ramp,
        saturation_cpu=args.saturation_cpu,
        saturation_p99_ms=args.saturation_p99,
        out_dir=args.out_dir,
        doc=None if args.no_doc else args.doc,
    )


async def _main(opts: BenchOptions, console: Console) -> dict[str, Any]:
    """Run the bench with SIGTERM treated like Ctrl-C (cleanup runs either way)."""
    from tickrelay.loadtest.cli import sigterm_cancels

    with sigterm_cancels():
        return await bench(opts, console)


def cmd_bench(argv: Sequence[str]) -> int:
    """Entry point of the `bench` subcommand."""
    args = bench_parser().parse_args(argv)
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"tickrelay-loadtest bench: {exc}", file=sys.stderr)
        return 2
    console = Console() if sys.stdout.isatty() else Console(width=200)
    raise_nofile_limit()  # inherited by the servers and the driver workers
    pinned, pinning = pin_driver(opts)
    opts = replace(opts, pin=pinned)
    console.print(f"[bold]bench[/]: {pinning}")
    machine = machine_info(pinning)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    try:
        results = asyncio.run(_main(opts, console))
    except asyncio.CancelledError:
        print("terminated", file=sys.stderr)
        return 143
    command = shlex.join(["tickrelay-loadtest", "bench", *argv])
    doc_plot = None
    out = {
        "command": command,
        "started_at": started.isoformat(),
        "seconds": round(time.monotonic() - t0, 1),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "machine": machine,
        **results,
    }
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    json_path = opts.out_dir / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    plot_path = plot_bench(results["sweep"], opts.out_dir / f"bench-{stamp}.png")
    if opts.doc is not None and results["sweep"]:
        doc_plot = plot_bench(results["sweep"], opts.doc.parent / "perf" / "bench.png")
        write_doc(opts.doc, out, doc_plot)
    print_tables(out, console)
    console.print(
        f"JSON: {json_path}  plot: {plot_path}"
        + (f"  doc: {opts.doc}" if doc_plot is not None else "")
    )
    return 0
