"""A bounded chaos run: players join, play, drop and resume on random workers while
workers are killed (SIGKILL) or drained (SIGTERM) and replaced at random.

Whatever happens, these hold for every client at every state message:

- ticks only grow on a connection, and never go back across the player's reconnections
  (two owners never both publish to it, and a room's clock survives its owner);
- never more players than seats;
- every acked input is in the state: each input sets ``v`` to its own ``seq``, so a
  frame whose ack for a player is ``a`` must show that player's ``v == a`` (inputs lost
  in a failover are those after the last checkpoint, and then their acks go with them).

At the end every room has exactly one owner among the live workers.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, ServerPool, ServerProcess
from tests.redis_support import RedisServer
from tickrelay.client import ConnectRefused, RoomClient, connect

CHAOS_SECONDS = 40.0
ROOMS = ("chaos-a", "chaos-b")
PLAYERS_PER_ROOM = 4
SEATS = 3  # fewer seats than players: 4009 under churn must hold
SETTINGS = {"max_players": SEATS, "resume_grace": 8, "checkpoint_ms": 300, "log_level": "error"}


@pytest.fixture
def redis(redis_binary: str, tmp_path: Any) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, redis_binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class Cluster:
    servers: ServerPool
    redis_url: str
    live: list[ServerProcess] = field(default_factory=list)
    killed: int = 0
    drained: int = 0

    def start_one(self) -> ServerProcess:
        server = self.servers.fresh(redis_url=self.redis_url, **SETTINGS)
        deadline = time.monotonic() + 15
        while not ready(server):
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.05)
        return server

    def pick(self) -> ServerProcess:
        return random.choice(self.live)


def ready(server: ServerProcess) -> bool:
    try:
        return httpx.get(f"{server.http}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Invariants:
    violations: list[str] = field(default_factory=list)
    states: int = 0
    resumes: int = 0

    def check(self, name: str, client: RoomClient, msg: dict[str, Any], last: list[int]) -> None:
        if msg.get("t") not in ("snap", "delta"):
            return
        self.states += 1
        tick = msg["tick"]
        seen, on_this_connection = last
        if tick <= on_this_connection or tick < seen:  # a resume may see its last tick again
            self.violations.append(f"{name}: tick {tick} after {seen}")
        last[:] = [tick, tick]
        mirror = client.mirror
        if len(mirror.players) > SEATS:
            self.violations.append(f"{name}: {len(mirror.players)} players in {SEATS} seats")
        for pid, ack in mirror.acks.items():
            v = (mirror.players.get(pid) or {}).get("v", 0)
            if ack and v != ack:
                self.violations.append(f"{name}: {pid} acked {ack} but its state has v={v}")


async def play(name: str, room_id: str, cluster: Cluster, rules: Invariants, end: float) -> None:
    """One player's life: join somewhere, play a while, drop, resume somewhere else."""
    token: str | None = None
    seq = 0
    last = [-1, -1]  # the last tick seen, and the last on the current connection
    while time.monotonic() < end:
        server = cluster.pick()
        try:
            client = await connect(
                server.ws, room_id, resume=token, initial_seq=seq,
                keep_messages=False, open_timeout=4,
            )  # fmt: skip
        except ConnectRefused as refused:
            if refused.code == 4012:
                token, seq = None, 0  # the place is gone: a fresh join next time
            await asyncio.sleep(0.2)
            continue
        except (OSError, TimeoutError):
            await asyncio.sleep(0.2)
            continue
        rules.resumes += token is not None
        last[1] = -1
        client.on_message = lambda msg, c=client: rules.check(name, c, msg, last)
        token = client.resume_token
        try:
            stop = min(end, time.monotonic() + random.uniform(1.0, 4.0))
            while time.monotonic() < stop and client.connected:
                await client.send_input({"v": client.seq + 1})
                token, seq = client.resume_token, client.seq
                await asyncio.sleep(0.05)
        except Exception:  # the worker went away under us: resume elsewhere
            pass
        token, seq = client.resume_token or token, max(seq, client.seq)
        await client.close()


async def chaos(cluster: Cluster, end: float) -> None:
    """Every few seconds a worker dies or drains, and a fresh one joins."""
    while time.monotonic() < end - 8:
        await asyncio.sleep(random.uniform(4.0, 7.0))
        victim = cluster.pick()
        cluster.live.remove(victim)
        if random.random() < 0.5:
            victim.process.send_signal(signal.SIGKILL)
            cluster.killed += 1
        else:
            victim.process.send_signal(signal.SIGTERM)
            cluster.drained += 1
        cluster.live.append(await asyncio.to_thread(cluster.start_one))


async def test_invariants_hold_while_workers_die_and_players_churn(
    servers: ServerPool, redis: RedisServer
) -> None:
    random.seed(20261202)
    cluster = Cluster(servers, redis.url)
    cluster.live = [cluster.start_one() for _ in range(3)]
    rules = Invariants()
    end = time.monotonic() + CHAOS_SECONDS
    players = [
        play(f"{room_id}/{n}", room_id, cluster, rules, end)
        for room_id in ROOMS
        for n in range(PLAYERS_PER_ROOM)
    ]
    await asyncio.gather(chaos(cluster, end), *players)

    assert rules.violations == [], rules.violations[:20]
    assert rules.states > 1000  # the run really played
    assert cluster.killed + cluster.drained >= 4
    assert rules.resumes > 0
    await asyncio.sleep(0.5)
    for room_id in ROOMS:
        owners = [server for server in cluster.live if owns(server, room_id)]
        assert len(owners) <= 1, f"{room_id} has {len(owners)} owners"


def owns(server: ServerProcess, room_id: str) -> bool:
    answer = httpx.get(
        f"{server.http}/rooms/{room_id}/connections",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=5,
    )
    return answer.status_code == 200
