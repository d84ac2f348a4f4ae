"""A room survives its worker, and the cluster survives Redis (contract section 9).

Real processes throughout: three tickrelay workers on a redis-server of the test's own.
An owner is killed with SIGKILL mid-game, drained with SIGTERM, and Redis is stopped and
restarted empty under live rooms, as happens in production.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServerPool, ServerProcess
from tests.helpers import collect_until, state_until, wait_until
from tests.redis_support import RedisServer
from tickrelay.client import RoomClient, connect

CHECKPOINT_MS = 300  # a short period, so a test sees a state checkpoint quickly
TAKEOVER_BOUND = 3.0  # seconds from an owner's death to its room ticking elsewhere


@pytest.fixture
def redis(redis_binary: str, tmp_path: Any) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, redis_binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def start_workers(servers: ServerPool, redis: RedisServer, count: int) -> list[ServerProcess]:
    started = [
        servers.fresh(redis_url=redis.url, resume_grace=10, checkpoint_ms=CHECKPOINT_MS)
        for _ in range(count)
    ]
    for server in started:
        wait_ready(server)
    return started


@pytest.fixture
def workers(servers: ServerPool, redis: RedisServer) -> list[ServerProcess]:
    return start_workers(servers, redis, 3)


def wait_ready(server: ServerProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while readiness(server) != 200:
        assert time.monotonic() < deadline, f"worker not ready:\n{server.log()[-2000:]}"
        time.sleep(0.05)


def readiness(server: ServerProcess) -> int:
    try:
        return httpx.get(f"{server.http}/readyz", timeout=1).status_code
    except httpx.HTTPError:
        return 0


def record_ticks(client: RoomClient) -> list[int]:
    ticks: list[int] = []
    client.on_message = lambda msg: ticks.append(msg["tick"]) if "tick" in msg else None
    return ticks


def strictly_growing(ticks: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(ticks))


async def wait_for_state_checkpoint() -> None:
    await asyncio.sleep(3 * CHECKPOINT_MS / 1000)


def cluster_stats(server: ServerProcess) -> dict[str, Any]:
    return httpx.get(f"{server.http}/stats", timeout=5).json()["cluster"]


# Owner death -------------------------------------------------------------------------------


async def test_a_room_goes_on_after_its_owner_is_killed(workers, room_id):
    owner, b, c = workers
    alice = await connect(owner.ws, room_id)  # the first join makes `owner` the owner
    dave = await connect(owner.ws, room_id)
    bob = await connect(b.ws, room_id)
    carol = await connect(c.ws, room_id)
    await alice.send_input({"x": 1})
    await dave.send_input({"y": 2})
    await bob.send_input({"z": 3})
    await state_until(carol, lambda s: len(s.players) == 4 and s.players[bob.pid] == {"z": 3})
    await wait_for_state_checkpoint()
    bob_ticks, carol_ticks = record_ticks(bob), record_ticks(carol)

    owner.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    before = len(bob_ticks)
    await wait_until(lambda: len(bob_ticks) > before, timeout=TAKEOVER_BOUND + 2)
    took = time.monotonic() - killed
    assert took <= TAKEOVER_BOUND, f"the room ticked again only {took:.2f} s after the kill"

    await bob.send_input({"z": 4})
    await state_until(carol, lambda s: s.players.get(bob.pid) == {"z": 4})
    assert carol.mirror.players[alice.pid] == {"x": 1}  # from the checkpoint
    assert bob.connected and carol.connected
    assert strictly_growing(bob_ticks) and strictly_growing(carol_ticks)
    for client in (bob, carol, alice, dave):
        await client.close()


async def test_the_killed_owners_players_resume_on_a_survivor_with_pid_and_state(workers, room_id):
    owner, b, c = workers
    alice = await connect(owner.ws, room_id)
    bob = await connect(b.ws, room_id)
    await alice.send_input({"x": 7})
    await state_until(bob, lambda s: s.players.get(alice.pid) == {"x": 7})
    await wait_for_state_checkpoint()
    token, pid, seq = alice.resume_token, alice.pid, alice.seq

    owner.process.send_signal(signal.SIGKILL)
    async with await connect(c.ws, room_id, resume=token, initial_seq=seq) as again:
        assert again.pid == pid
        assert again.welcome["resumed"] is True
        await state_until(again, lambda s: s.players.get(pid) == {"x": 7})
        await again.send_input({"x": 8})
        await state_until(bob, lambda s: s.players.get(pid) == {"x": 8})
    await bob.close()
    await alice.close()


async def test_survivors_see_the_dead_workers_players_away(workers, room_id):
    owner, b, _ = workers
    alice = await connect(owner.ws, room_id)
    bob = await connect(b.ws, room_id)
    await state_until(bob, lambda s: alice.pid in s.players)
    await asyncio.sleep(0.1)  # the roster checkpoint is written within a loop turn
    owner.process.send_signal(signal.SIGKILL)
    seen = await collect_until(
        bob, lambda msg: msg["t"] == "host" and msg["pid"] == bob.pid, timeout=8
    )  # alice held the role: it passes on, after her `away`, as in one process
    assert [msg["pid"] for msg in seen if msg["t"] == "away"] == [alice.pid]
    await bob.close()
    await alice.close()


async def test_a_takeover_keeps_seats_and_tokens_of_players_on_live_workers(workers, room_id):
    owner, b, c = workers
    alice = await connect(owner.ws, room_id)
    bob = await connect(b.ws, room_id)
    await state_until(bob, lambda s: alice.pid in s.players)
    owner.process.send_signal(signal.SIGKILL)
    await asyncio.sleep(TAKEOVER_BOUND)
    token = bob.resume_token
    await bob.close()  # a drop after the takeover: bob resumes with the token he had
    async with await connect(c.ws, room_id, resume=token) as again:
        assert again.pid == bob.pid
    await alice.close()


# Drain -----------------------------------------------------------------------------------


async def test_a_drained_owner_closes_its_players_1012_and_they_resume_elsewhere(workers, room_id):
    owner, b, _ = workers
    alice = await connect(owner.ws, room_id)
    bob = await connect(b.ws, room_id)
    await alice.send_input({"x": 5})
    await state_until(bob, lambda s: s.players.get(alice.pid) == {"x": 5})
    token, pid, seq = alice.resume_token, alice.pid, alice.seq
    bob_ticks = record_ticks(bob)

    owner.process.send_signal(signal.SIGTERM)
    assert await alice.wait_closed() == 1012
    owner.process.wait(timeout=10)

    async with await connect(b.ws, room_id, resume=token, initial_seq=seq) as again:
        assert again.pid == pid
        await state_until(again, lambda s: s.players.get(pid) == {"x": 5})  # nothing lost
        await again.send_input({"x": 6})
        await state_until(bob, lambda s: s.players.get(pid) == {"x": 6})
    assert bob.connected and strictly_growing(bob_ticks)
    await bob.close()


async def test_a_drain_hands_rooms_over_without_waiting_for_the_lease(workers, room_id):
    owner, b, _ = workers
    alice = await connect(owner.ws, room_id)
    bob = await connect(b.ws, room_id)
    await state_until(bob, lambda s: alice.pid in s.players)
    owner.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    await wait_until(lambda: cluster_stats(b)["takeovers"] == 1, timeout=5)
    assert time.monotonic() - stopped < 1.0  # a lease would take 2 s to lapse
    await bob.send_input({"after": 1})
    await state_until(bob, lambda s: s.players.get(bob.pid) == {"after": 1})
    await alice.close()
    await bob.close()


# Redis faults ----------------------------------------------------------------------------


async def test_workers_survive_a_redis_restart_and_play_on(servers, redis, room_id):
    a, b = start_workers(servers, redis, 2)
    alice = await connect(a.ws, room_id)
    bob = await connect(b.ws, room_id)
    await bob.send_input({"n": 1})
    await state_until(alice, lambda s: s.players.get(bob.pid) == {"n": 1})

    redis.stop()
    for server in (a, b):
        await wait_until(lambda server=server: readiness(server) == 503, timeout=10)
    await alice.send_input({"m": 1})  # the room ticks on for its local players
    await state_until(alice, lambda s: s.players.get(alice.pid) == {"m": 1})
    redis.start()
    for server in (a, b):
        await wait_until(lambda server=server: readiness(server) == 200, timeout=15)
    assert a.process.poll() is None and b.process.poll() is None

    seq = await bob.send_input({"n": 2})
    await state_until(alice, lambda s: s.players.get(bob.pid) == {"n": 2}, timeout=10)
    await state_until(bob, lambda s: s.acks.get(bob.pid, 0) >= seq)
    await alice.send_event({"hi": 1}, to=[bob.pid])
    events = await collect_until(bob, lambda msg: msg["t"] == "event", timeout=5)
    assert events[-1]["d"] == {"hi": 1}
    await alice.close()
    await bob.close()


async def test_a_redis_restart_is_logged_once_per_transition(servers, redis, room_id):
    (a,) = start_workers(servers, redis, 1)
    async with await connect(a.ws, room_id):
        redis.stop()
        await wait_until(lambda: readiness(a) == 503, timeout=10)
        await asyncio.sleep(2)  # many failed renewals and reads
        redis.start()
        await wait_until(lambda: readiness(a) == 200, timeout=15)
    log = a.log()
    assert log.count("cannot reach Redis") == 1
    assert "Traceback" not in log


async def test_owners_reassert_their_rooms_before_anyone_takes_them_over(servers, redis, room_id):
    a, b = start_workers(servers, redis, 2)
    alice = await connect(a.ws, room_id)
    bob = await connect(b.ws, room_id)
    await state_until(bob, lambda s: alice.pid in s.players)
    redis.stop()
    await asyncio.sleep(2.5)  # longer than a lease: every lease is gone with Redis
    redis.start()
    for server in (a, b):
        await wait_until(lambda server=server: readiness(server) == 200, timeout=15)
    await asyncio.sleep(3)  # a wrong takeover would have happened by now
    assert cluster_stats(a)["owned_rooms"] == 1
    assert cluster_stats(b)["takeovers"] == 0
    assert alice.connected and bob.connected
    await alice.close()
    await bob.close()


# Demotion --------------------------------------------------------------------------------


async def test_a_paused_owner_is_demoted_and_its_players_closed_1012(workers, room_id):
    owner, b, _ = workers
    alice = await connect(owner.ws, room_id)
    bob = await connect(b.ws, room_id)
    await alice.send_input({"x": 1})
    await state_until(bob, lambda s: s.players.get(alice.pid) == {"x": 1})
    await wait_for_state_checkpoint()
    alice_ticks, bob_ticks = record_ticks(alice), record_ticks(bob)

    owner.process.send_signal(signal.SIGSTOP)  # a long GC pause, a stopped VM
    try:
        await asyncio.sleep(TAKEOVER_BOUND + 0.5)
        await bob.send_input({"y": 1})
        await state_until(bob, lambda s: s.players.get(bob.pid) == {"y": 1})  # b ticks it
    finally:
        owner.process.send_signal(signal.SIGCONT)
    async with asyncio.timeout(5):
        assert await alice.wait_closed() == 1012
    assert cluster_stats(owner)["owned_rooms"] == 0
    assert cluster_stats(b)["takeovers"] == 1
    assert strictly_growing(alice_ticks) and strictly_growing(bob_ticks)
    await bob.close()


async def test_a_delete_sent_to_a_paused_owner_answers_504(workers, room_id):
    owner, b, _ = workers
    alice = await connect(owner.ws, room_id)
    owner.process.send_signal(signal.SIGSTOP)
    try:
        answer = await asyncio.to_thread(
            httpx.delete, f"{b.http}/rooms/{room_id}", headers=b.admin_headers(), timeout=10
        )
    finally:
        owner.process.send_signal(signal.SIGCONT)
    assert answer.status_code == 504
    await alice.close()
