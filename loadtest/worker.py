"""A driver process: runs its share of the players on one uvloop event loop.

Talks to the parent over a `multiprocessing` pipe: `("ready", w)`, then after `("start", t0)`
one `("interval", w, k, stats)` per second `k` since the wall-clock start `t0`, and at the
end `("final", w, summary)`. `("stop",)` from the parent (Ctrl-C) ends the run early.
Everything it starts (connect tasks, timers, connections) is cancelled or closed before it
returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import signal
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from tickrelay.loadtest.config import LoadConfig
from tickrelay.loadtest.frames import SharedDecoder
from tickrelay.loadtest.interval import IntervalStats
from tickrelay.loadtest.plan import plan_seats
from tickrelay.loadtest.player import ConnectFailed, Player

#: Seconds between event-loop lag probes.
LAG_PROBE = 0.1
#: Extra seconds after the window so the last measured second is reported complete.
TAIL = 0.3
#: At the window's end, inputs pending for longer than this count at their age (see
#: `AckTracker.censor`); younger ones are simply in flight.
CENSOR_AFTER = 0.25


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE to its hard limit (thousands of sockets); return the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Worker:
    """The players of one driver process and the loops that drive them."""

    def __init__(self, cfg: LoadConfig, index: int, pipe: Connection) -> None:
        self.cfg = cfg
        self.index = index
        self.pipe = pipe
        self.stats = IntervalStats()
        seats = plan_seats(cfg, index)
        decode = SharedDecoder(cfg.codec, limit=max(256, 4 * cfg.rooms))
        self.players = [Player(cfg, seat, self.stats, decode) for seat in seats]
        self.connecting: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.t0 = 0.0
        self.rng = random.Random(cfg.seed * 7919 + index)
        self.next_k = 0
        self.cpu_last = time.process_time()

    async def main(self, t0_wall: float) -> None:
        """Run until the end of the window (or a stop), then close everything down."""
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + (t0_wall - time.time())
        self.cpu_last = time.process_time()
        end = self.t0 + self.cfg.window[1] + TAIL
        loop.add_reader(self.pipe.fileno(), self._on_pipe)
        tasks = [
            asyncio.create_task(self._ramp(), name="ramp"),
            asyncio.create_task(self._sender(), name="sender"),
            asyncio.create_task(self._reporter(), name="reporter"),
            asyncio.create_task(self._lag_probe(), name="lag"),
        ]
        if self.cfg.churn > 0:
            tasks.append(asyncio.create_task(self._churn(), name="churn"))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, end - loop.time())):
                    await self.stop.wait()
        finally:
            loop.remove_reader(self.pipe.fileno())
            pending = [*tasks, *self.connecting]
            for t in pending:
                t.cancel()
            results = await asyncio.gather(*pending, return_exceptions=True)
            for r in results:
                if isinstance(r, Exception):
                    self.stats.errors[f"driver:{type(r).__name__}"] += 1
            await self._leave_all()
        self._send_interval(self.next_k)
        self.pipe.send(("final", self.index, self._summary()))

    async def _leave_all(self, timeout: float = 1.0) -> None:
        """Say `leave` and let the server close (the contract's way out), then close the
        connections it did not close in time."""
        for p in self.players:
            p.leave()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and any(p.connected for p in self.players):
            await asyncio.sleep(0.05)
        for p in self.players:
            p.close()
        await asyncio.sleep(0.1)  # let the last close frames and FINs go out

    # -- loops --------------------------------------------------------------------------------

    async def _ramp(self) -> None:
        """Connect each player at its slot: global index / connects-per-second."""
        loop = asyncio.get_running_loop()
        for p in self.players:
            delay = self.t0 + p.seat.index / self.cfg.ramp - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._spawn(self._connect(p, resume=False))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect(self, p: Player, resume: bool) -> None:
        try:
            took = await p.connect(resume)
        except ConnectFailed as exc:
            if resume:
                self.stats.resumes_failed += 1
            else:
                self.stats.connects_failed += 1
            self.stats.errors[f"connect:{exc.args[0]}"] += 1
            return
        if resume:
            if p.resumed:
                self.stats.resumes_ok += 1
            else:
                self.stats.resumes_failed += 1
            self.stats.resume_time.record(took)
        else:
            self.stats.connects_ok += 1
            self.stats.connect_time.record(took)

    async def _sender(self) -> None:
        """Send every player's input once per period, spread over slots within the period.

        One loop for all players (not a task each): a timer per slot instead of a timer per
        player per input.
        """
        loop = asyncio.get_running_loop()
        period = 1.0 / self.cfg.input_hz
        senders = [p for p in self.players if not p.seat.spectator]
        nslots = max(1, min(50, round(period / 0.005)))
        slots = [senders[i::nslots] for i in range(nslots)]
        step = period / nslots
        nxt = self.t0
        k = 0
        perf = time.perf_counter
        while True:
            delay = nxt - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -period:
                self.stats.sender_late += 1
                nxt = loop.time()
            now = perf()
            for p in slots[k]:
                p.send_input(now)
            k = (k + 1) % nslots
            nxt += step

    async def _reporter(self) -> None:
        """Ship second `k`'s stats to the parent at `t0 + k + 1`."""
        loop = asyncio.get_running_loop()
        while True:
            delay = self.t0 + self.next_k + 1 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.next_k == self.cfg.window[1] - 1:
                self._censor()
            self._send_interval(self.next_k)

    async def _lag_probe(self) -> None:
        """Event-loop lag: how late a short sleep wakes up. Large lag = we are the bottleneck."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + LAG_PROBE
            await asyncio.sleep(LAG_PROBE)
            self.stats.loop_lag.record(loop.time() - expected)

    async def _churn(self) -> None:
        """Drop a random connected player and reconnect it with its resume token."""
        period = self.cfg.workers / self.cfg.churn
        while True:
            await asyncio.sleep(self.rng.expovariate(1.0 / period))
            candidates = [p for p in self.players if p.open and not p.seat.slow]
            if not candidates:
                continue
            p = self.rng.choice(candidates)
            p.drop()
            self._spawn(self._connect(p, resume=True))

    # -- reporting ----------------------------------------------------------------------------

    def _send_interval(self, k: int) -> None:
        cpu = time.process_time()
        self.stats.cpu = {f"w{self.index}": cpu - self.cpu_last}
        self.cpu_last = cpu
        self.next_k = k + 1
        self.stats.connected = sum(1 for p in self.players if p.open)
        self.pipe.send(("interval", self.index, k, self.stats.snapshot_and_reset()))

    def _censor(self) -> None:
        now = time.perf_counter()
        st = self.stats
        for p in self.players:
            into = st.latency_slow if p.seat.slow else st.latency
            n = p.tracker.acks.censor(now, CENSOR_AFTER, into)
            if not p.seat.slow:
                st.unacked += n

    def _summary(self) -> dict[str, Any]:
        healthy = [p for p in self.players if not p.seat.slow]
        return {
            "skipped_per_client": [p.tracker.skipped for p in healthy if p.tracker.states],
            "states_per_client": [p.tracker.states for p in self.players],
            "never_connected": sum(1 for p in self.players if p.pid is None),
        }

    def _on_pipe(self) -> None:
        try:
            while self.pipe.poll():
                msg = self.pipe.recv()
                if msg and msg[0] == "stop":
                    self.stop.set()
        except (EOFError, OSError):
            self.stop.set()  # the parent is gone: wind down


def worker_main(cfg: LoadConfig, index: int, pipe: Connection) -> None:
    """Process entry point (spawned by the runner)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    try:
        raise_nofile_limit()
        worker = Worker(cfg, index, pipe)
        pipe.send(("ready", index))
        msg = pipe.recv()
        if msg[0] != "start":
            return
        uvloop.run(worker.main(float(msg[1])))
    except (EOFError, BrokenPipeError):
        return
    except BaseException:
        with contextlib.suppress(OSError):
            pipe.send(("crash", index, traceback.format_exc()))
        raise
    finally:
        pipe.close()
