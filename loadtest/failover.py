"""``tickrelay-loadtest failover``: how long a room is without an owner, and what saving
it costs.

Two measurements, each on a redis-server and tickrelay workers this command starts:

1. **Takeover time.** Three workers; a room with a player on each, playing. The owner is
   killed with SIGKILL; the time until a player on a surviving worker receives the room's
   next state is one sample. Repeated ``--kills`` times (a fresh worker replaces each dead
   one); p50 and max are printed. The default lease is 2 s: a takeover cannot start
   before the dead owner's lease lapses.
2. **Checkpoint cost.** One worker owning ``--rooms`` rooms, two players each sending
   inputs; measured in turns in one run, checkpoints every second and (the baseline) once
   a minute, twice each. The difference in CPU (the worker and Redis together), divided by
   rooms and seconds, is what checkpoints cost per room per second; the worker's own
   time encoding them (``/stats`` ``checkpoint_encode_seconds``) is printed beside it,
   being free of the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil

from tickrelay.client import RoomClient, connect
from tickrelay.loadtest.redisproc import RedisServer, free_port


class Worker:
    """One ``tickrelay serve`` process on its own port."""

    def __init__(self, redis_url: str, log_dir: Path, **settings: str) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKRELAY_")}
        settings = {"redis_url": redis_url, "log_level": "error", "drain_seconds": "0",
                    "room_create_rate": "1000", **settings}  # fmt: skip
        env.update({f"TICKRELAY_{k.upper()}": v for k, v in settings.items()})
        argv = [sys.executable, "-m", "tickrelay.server.cli", "serve",
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        with open(log_dir / f"worker-{self.port}.log", "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 20
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker on port {self.port} did not start")
            time.sleep(0.05)

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_of(process: subprocess.Popen[bytes] | None) -> float:
    if process is None:
        return 0.0
    times = psutil.Process(process.pid).cpu_times()
    return times.user + times.system


# Takeover time -----------------------------------------------------------------------------


async def one_takeover(workers: list[Worker], room_id: str) -> float:
    """Seconds from the owner's SIGKILL to the room's next state on a survivor."""
    owner, other, third = workers
    players = [await connect(w.ws, room_id, keep_messages=False) for w in (owner, other, third)]
    watcher = players[1]
    seen: list[float] = []
    killed = [0.0]

    def on_message(msg: dict[str, object]) -> None:
        if msg.get("t") in ("snap", "delta") and killed[0]:
            seen.append(time.monotonic())

    watcher.on_message = on_message
    feeding = asyncio.create_task(feed(players[1:]))
    try:
        await asyncio.sleep(1.5)  # a state checkpoint at least
        owner.proc.send_signal(signal.SIGKILL)
        killed[0] = time.monotonic()
        owner.proc.wait()
        deadline = time.monotonic() + 15
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        for player in players:
            await player.close()
    if not seen:
        raise RuntimeError(f"room {room_id} never ticked again after its owner died")
    return seen[0] - killed[0]


async def feed(players: list[RoomClient]) -> None:
    """Inputs at 20 per second per player (the survivors' players keep playing)."""
    n = 0
    while True:
        n += 1
        for player in players:
            if player.connected:
                with contextlib.suppress(Exception):
                    await player.send_input({"n": n})
        await asyncio.sleep(0.05)


async def takeover_times(redis_url: str, log_dir: Path, kills: int) -> list[float]:
    workers = [Worker(redis_url, log_dir) for _ in range(3)]
    samples = []
    try:
        for n in range(kills):
            samples.append(await one_takeover(workers, f"failover-{n}"))
            print(f"  kill {n + 1}: room ticking again after {samples[-1]:.2f} s", flush=True)
            workers = [*workers[1:], Worker(redis_url, log_dir)]
    finally:
        for worker in workers:
            worker.stop()
    return samples


# Checkpoint cost ---------------------------------------------------------------------------


async def checkpoint_cpu(
    redis: RedisServer, log_dir: Path, rooms: int, seconds: float, checkpoint_ms: int
) -> tuple[float, dict[str, float]]:
    """CPU seconds (worker + Redis) over ``seconds`` of play, and the cluster stats."""
    worker = Worker(redis.url, log_dir, checkpoint_ms=str(checkpoint_ms))
    players = []
    try:
        for n in range(rooms):
            for _ in range(2):
                players.append(await connect(worker.ws, f"ck-{checkpoint_ms}-{n}",
                                             keep_messages=False))  # fmt: skip
        feeding = asyncio.create_task(feed(players))
        await asyncio.sleep(2.0)  # warm up: the first checkpoints, the allocator
        before = worker.cpu() + cpu_of(redis.process)
        await asyncio.sleep(seconds)
        used = worker.cpu() + cpu_of(redis.process) - before
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        stats = httpx.get(f"http://127.0.0.1:{worker.port}/stats", timeout=5).json()
        return used, stats["cluster"]
    finally:
        for player in players:
            await player.close()
        worker.stop()


# The command -------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tickrelay-loadtest failover", description=__doc__)
    parser.add_argument("--kills", type=int, default=5, help="owners killed (default 5)")
    parser.add_argument("--rooms", type=int, default=50, help="rooms for the checkpoint cost")
    parser.add_argument("--seconds", type=float, default=10.0, help="per checkpoint run")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tickrelay-failover-") as tmp:
        log_dir = Path(tmp)
        redis = RedisServer(log_dir)
        redis.start()
        try:
            print(f"takeover time over {args.kills} SIGKILLs of a room's owner (3 workers):")
            samples = await takeover_times(redis.url, log_dir, args.kills)
            print(f"  p50 {statistics.median(samples):.2f} s, max {max(samples):.2f} s")
            print(f"checkpoint cost, {args.rooms} rooms x 2 players x 20 inputs/s:")
            base = used = encode = 0.0
            written = 0
            for _ in range(2):
                cpu, _ = await checkpoint_cpu(redis, log_dir, args.rooms, args.seconds, 60_000)
                base += cpu
                cpu, stats = await checkpoint_cpu(redis, log_dir, args.rooms, args.seconds, 1000)
                used += cpu
                encode += stats["checkpoint_encode_seconds"]
                written += stats["checkpoints_written"]
            room_seconds = 2 * args.rooms * args.seconds
            print(f"  CPU (worker + Redis): {base:.2f} s without, {used:.2f} s with checkpoints "
                  f"every second ({used / base:.3f}x); {written} parts written")  # fmt: skip
            print(f"  checkpoints cost {(used - base) / room_seconds * 1e6:.0f} us of CPU per "
                  f"room per second (end to end, noisy); encoding them "
                  f"{encode / room_seconds * 1e6:.1f} us")  # fmt: skip
        finally:
            redis.kill()


def cmd_failover(argv: Sequence[str]) -> int:
    asyncio.run(run(parse(argv)))
    return 0
