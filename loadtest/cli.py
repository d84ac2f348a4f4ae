"""`tickrelay-loadtest`: `[run] URL [options]` for one load run, `bench` for the suite.

Exit codes: 0 done, 1 nothing connected or a driver crash, 3 the driver was the
bottleneck (figures invalid), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from tickrelay.loadtest.config import LoadConfig, SlowConfig, Thresholds

EXIT_DRIVER_BOUND = 3


def add_load_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `run` (and meaningful to the bench's workload)."""
    g = p.add_argument_group("workload")
    g.add_argument("--rooms", type=int, default=1, help="number of rooms (default 1)")
    g.add_argument("--players", type=int, default=8, help="players per room (default 8)")
    g.add_argument("--spectators", type=int, default=0, help="spectators per room (default 0)")
    g.add_argument("--rate", type=float, default=20.0, help="inputs per second per player")
    g.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    g.add_argument("--ramp-up", type=float, default=200.0, help="connects per second")
    g.add_argument("--warmup", type=float, default=1.0, help="seconds between ramp and window")
    g.add_argument("--workers", type=int, default=1, help="driver processes")
    g.add_argument("--codec", choices=("msgpack", "json"), default="msgpack")
    g.add_argument("--room-prefix", default=None, help="room ids are PREFIX-N (default random)")
    g.add_argument("--seed", type=int, default=1)
    s = p.add_argument_group("slow clients")
    s.add_argument("--slow-fraction", type=float, default=0.0, help="fraction of slow players")
    s.add_argument("--slow-mode", choices=("stall", "rate"), default="stall")
    s.add_argument(
        "--slow-stall",
        type=float,
        default=0.0,
        help="stall seconds per cycle (0: stop reading for good)",
    )
    s.add_argument("--slow-every", type=float, default=10.0, help="stall cycle length (s)")
    s.add_argument("--slow-rate", type=int, default=2048, help="bytes/s read in rate mode")
    s.add_argument("--slow-rcvbuf", type=int, default=4096, help="slow players' SO_RCVBUF")
    s.add_argument(
        "--slow-mss",
        type=int,
        default=1448,
        help="slow players' TCP MSS (0: loopback's, hides stalls behind MiBs)",
    )
    a = p.add_argument_group("churn and auth")
    a.add_argument("--churn", type=float, default=0.0, help="drops + resumes per second")
    a.add_argument("--secret", default=None, help="HS256 secret: mint a JWT per player")
    a.add_argument("--token-rooms", action="store_true", help="put `rooms` in the tokens")
    t = p.add_argument_group("driver bottleneck thresholds")
    t.add_argument("--max-driver-cpu", type=float, default=0.9, help="per process, of a core")
    t.add_argument("--max-loop-lag", type=float, default=50.0, help="p99 event-loop lag (ms)")


def config_from_args(args: argparse.Namespace, url: str) -> LoadConfig:
    """Build the frozen config (validation happens there)."""
    return LoadConfig(
        url=url,
        rooms=args.rooms,
        players=args.players,
        spectators=args.spectators,
        input_hz=args.rate,
        duration=args.duration,
        ramp=args.ramp_up,
        warmup=args.warmup,
        workers=args.workers,
        codec=args.codec,
        slow=SlowConfig(
            fraction=args.slow_fraction,
            mode=args.slow_mode,
            stall=args.slow_stall,
            every=args.slow_every,
            rate=args.slow_rate,
            rcvbuf=args.slow_rcvbuf,
            mss=args.slow_mss,
        ),
        churn=args.churn,
        secret=args.secret,
        token_rooms=args.token_rooms,
        room_prefix=args.room_prefix or f"lt{secrets.token_hex(3)}",
        seed=args.seed,
        thresholds=Thresholds(
            worker_cpu=args.max_driver_cpu,
            total_cpu=args.max_driver_cpu,
            loop_lag_p99_ms=args.max_loop_lag,
        ),
    )


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tickrelay-loadtest [run]",
        description="Simulated players against a tickrelay (or compatible) server.",
    )
    p.add_argument(
        "url", nargs="?", default="ws://127.0.0.1:8000",
        help="server base URL; several, comma-separated, take the rooms in turn",
    )  # fmt: skip
    add_load_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--json", dest="json_path", type=Path, help="write the JSON report here")
    o.add_argument("--plot", type=Path, help="write a PNG plot here")
    o.add_argument("--quiet", action="store_true", help="no live display, no summary table")
    return p


async def _run(cfg: LoadConfig, console: Console, live: bool) -> dict[str, Any]:
    from tickrelay.loadtest.progress import LiveProgress
    from tickrelay.loadtest.report import build_report
    from tickrelay.loadtest.runner import run_load

    with sigterm_cancels():
        if live:
            with LiveProgress(cfg, console) as progress:
                result = await run_load(cfg, on_interval=progress.update)
        else:
            result = await run_load(cfg)
    return build_report(result)


@contextlib.contextmanager
def sigterm_cancels() -> Iterator[None]:
    """Within a task: SIGTERM cancels it, like Ctrl-C, so every `finally` cleans up."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def cmd_run(argv: Sequence[str]) -> int:
    """One load run; prints the summary, writes --json / --plot."""
    args = run_parser().parse_args(argv)
    try:
        cfg = config_from_args(args, args.url)
    except ValueError as exc:
        print(f"tickrelay-loadtest: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=False)
    try:
        report = asyncio.run(_run(cfg, console, live=not args.quiet and console.is_terminal))
    except asyncio.CancelledError:
        print("terminated", file=sys.stderr)
        return 143
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        from tickrelay.loadtest.plot import plot_run

        plot_run(report, args.plot)
    if not args.quiet:
        from tickrelay.loadtest.report import print_summary

        print_summary(report, console)
    if report["connections"]["ok"] == 0:
        return 1
    return 0 if report["valid"] else EXIT_DRIVER_BOUND


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "bench":
            from tickrelay.loadtest.bench import cmd_bench

            return cmd_bench(argv[1:])
        if argv and argv[0] == "failover":
            from tickrelay.loadtest.failover import cmd_failover

            return cmd_failover(argv[1:])
        if argv and argv[0] == "run":
            argv = argv[1:]
        return cmd_run(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
