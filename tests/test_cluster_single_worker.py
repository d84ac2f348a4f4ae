"""One worker with Redis pays nothing per message for the cluster: with every member local,
a game publishes nothing at all (counted by the redis-server itself)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from tests.helpers import state_until
from tests.redis_support import RedisServer
from tickrelay.client import connect


def calls(redis_server: RedisServer, command: str) -> int:
    """How often the redis-server ran ``command``."""
    client = redis.Redis(port=redis_server.port)
    try:
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    finally:
        client.close()
    return int(stats.get("calls", 0))


def script_calls(redis_server: RedisServer) -> int:
    """SCRIPT of any kind: Redis 7 counts its subcommands apart, 6.2 as one command."""
    client = redis.Redis(port=redis_server.port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_script"))


def reset_stats(redis_server: RedisServer) -> None:
    client = redis.Redis(port=redis_server.port)
    try:
        client.config_resetstat()
    finally:
        client.close()


def publishes(redis_server: RedisServer) -> int:
    return calls(redis_server, "publish")


@pytest.fixture
def lone_worker(servers, redis_server: RedisServer):
    server = servers.fresh(redis_url=redis_server.url)
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.http}/readyz", timeout=1).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return server


async def test_a_game_on_one_worker_with_redis_publishes_nothing(
    lone_worker, redis_server, room_id
):
    async with (
        await connect(lone_worker.ws, room_id) as alice,
        await connect(lone_worker.ws, room_id) as bob,
    ):
        await alice.wait_for("join")
        before = publishes(redis_server)
        for n in range(40):  # two seconds of a game at 20 Hz: inputs, ticks, events
            await alice.send_input({"n": n})
            await bob.send_input({"m": n})
            if n % 10 == 0:
                await alice.send_event({"n": n})
            await asyncio.sleep(0.05)
        await state_until(bob, lambda mirror: mirror.players[alice.pid] == {"n": 39})
        assert publishes(redis_server) == before
        assert bob.mirror.tick > 20  # the room did tick all along


async def test_the_room_of_a_lone_worker_is_in_the_directory(lone_worker, room_id):
    async with await connect(lone_worker.ws, room_id):
        await asyncio.sleep(0.2)
        listed = httpx.get(f"{lone_worker.http}/rooms/{room_id}", timeout=5)
        assert listed.status_code == 200
        assert listed.json()["players"] == 1


async def test_checkpoints_take_one_round_trip_per_write(lone_worker, redis_server, room_id):
    """Their fenced scripts go as EVAL with the text: redis-py's Script in a pipeline
    would ask SCRIPT EXISTS first, every time."""
    async with await connect(lone_worker.ws, room_id) as alice:
        await asyncio.sleep(0.2)  # the join's directory entry and roster checkpoint
        reset_stats(redis_server)
        for n in range(30):  # 1.5 s: at least one checkpoint of the moving state
            await alice.send_input({"n": n})
            await asyncio.sleep(0.05)
        assert calls(redis_server, "eval") >= 1
    assert script_calls(redis_server) == 0
