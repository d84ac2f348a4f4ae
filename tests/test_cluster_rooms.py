"""One room, any worker: three tickrelay processes on one redis-server behave like one.

Every worker here is a separate server process on its own port, as separate hosts would
be, sharing a redis-server of the test's own. Players of one room are spread over the
workers; what each client sees must not depend on the worker it reached (contract
section 9).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN, ServerPool, ServerProcess
from tests.helpers import assert_closed_with, refusal, state_until
from tests.redis_support import RedisServer
from tickrelay.client import connect

WORKERS = 3


@pytest.fixture(scope="module")
def redis_url(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), redis_binary)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def wait_ready(server: ServerProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.http}/readyz", timeout=1).status_code != 200:
        assert time.monotonic() < deadline, f"worker not ready:\n{server.log()[-2000:]}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def workers(servers: ServerPool, redis_url: str) -> list[ServerProcess]:
    started = [
        servers.fresh(redis_url=redis_url, max_players=4, resume_grace=5) for _ in range(WORKERS)
    ]
    for server in started:
        wait_ready(server)
    return started


def owner_of(workers: list[ServerProcess], room_id: str) -> ServerProcess:
    """The worker that ticks the room: the one whose connections list answers."""
    for server in workers:
        answer = httpx.get(
            f"{server.http}/rooms/{room_id}/connections",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=5,
        )
        if answer.status_code == 200:
            return server
    raise AssertionError(f"no worker owns {room_id}")


# State, acks, presence -------------------------------------------------------------------


async def test_players_on_different_workers_share_one_room_state(workers, room_id):
    a, b, c = workers
    async with (
        await connect(a.ws, room_id) as alice,
        await connect(b.ws, room_id) as bob,
        await connect(c.ws, room_id) as carol,
    ):
        seq = await bob.send_input({"x": 1})
        await carol.send_input({"y": 2})
        for client in (alice, bob, carol):
            await state_until(
                client,
                lambda mirror: (
                    mirror.players.get(bob.pid) == {"x": 1}
                    and mirror.players.get(carol.pid) == {"y": 2}
                ),
            )
        assert bob.mirror.acks[bob.pid] >= seq
        assert alice.mirror.players == bob.mirror.players == carol.mirror.players


async def test_a_remote_player_gets_deltas_after_its_first_snap(workers, room_id):
    a, b = workers[:2]
    async with await connect(a.ws, room_id) as alice, await connect(b.ws, room_id) as bob:
        kinds: list[str] = []
        bob.on_message = lambda msg: kinds.append(msg["t"])
        for n in range(5):
            await alice.send_input({"n": n})
            await state_until(bob, lambda mirror, n=n: mirror.players[alice.pid] == {"n": n})
        states = [kind for kind in kinds if kind in ("snap", "delta")]
        assert "delta" in states
        assert bob.mirror.tick is not None


async def test_ticks_only_grow_for_a_player_on_another_worker(workers, room_id):
    a, b = workers[:2]
    async with await connect(a.ws, room_id) as alice, await connect(b.ws, room_id) as bob:
        ticks: list[int] = []
        bob.on_message = lambda msg: ticks.append(msg["tick"]) if "tick" in msg else None
        for n in range(10):
            await alice.send_input({"n": n})
            await asyncio.sleep(0.03)
        await state_until(bob, lambda mirror: mirror.players[alice.pid] == {"n": 9})
        assert ticks == sorted(ticks)
        assert len(ticks) == len(set(ticks))


async def test_join_leave_away_and_back_reach_players_on_other_workers(workers, room_id):
    a, b, c = workers
    async with await connect(a.ws, room_id) as alice:
        bob = await connect(b.ws, room_id)
        assert (await alice.wait_for("join")) == {"t": "join", "pid": bob.pid}
        token = bob.resume_token
        await bob.close()  # a drop: the seat waits for a resume
        assert (await alice.wait_for("away")) == {"t": "away", "pid": bob.pid}
        async with await connect(c.ws, room_id, resume=token) as bob_again:
            assert bob_again.pid == bob.pid
            assert bob_again.welcome["resumed"] is True
            assert (await alice.wait_for("back")) == {"t": "back", "pid": bob.pid}
            await bob_again.leave()
        left = await alice.wait_for("leave")
        assert left == {"t": "leave", "pid": bob.pid, "reason": "left"}


async def test_a_resume_on_another_worker_delivers_what_the_player_missed(workers, room_id):
    a, b, c = workers
    async with await connect(a.ws, room_id) as alice:
        bob = await connect(b.ws, room_id)
        await alice.wait_for("join")
        token = bob.resume_token
        await bob.close()
        await alice.wait_for("away")
        await alice.send_event({"while": "away"}, to=[bob.pid])
        await alice.ping()  # the event reached the owner before bob comes back
        async with await connect(c.ws, room_id, resume=token) as bob_again:
            event = await bob_again.wait_for("event")
            assert event == {"t": "event", "from": alice.pid, "d": {"while": "away"}}


async def test_events_with_to_reach_only_the_named_players_across_workers(workers, room_id):
    a, b, c = workers
    async with (
        await connect(a.ws, room_id) as alice,
        await connect(b.ws, room_id) as bob,
        await connect(c.ws, room_id) as carol,
    ):
        await alice.send_event({"secret": 1}, to=[carol.pid])
        await alice.send_event({"all": 1})
        assert (await carol.wait_for("event"))["d"] == {"secret": 1}
        assert (await carol.wait_for("event"))["d"] == {"all": 1}
        assert (await bob.wait_for("event"))["d"] == {"all": 1}
        assert [m for m in bob.drain() if m["t"] == "event"] == []


async def test_the_host_role_moves_to_a_player_on_another_worker(workers, room_id):
    a, b = workers[:2]
    alice = await connect(a.ws, room_id)
    async with await connect(b.ws, room_id) as bob:
        assert bob.host == alice.pid
        await alice.leave()
        host = await bob.wait_for("host")
        assert host == {"t": "host", "pid": bob.pid}


async def test_spectators_on_another_worker_see_the_state_and_cannot_send_input(workers, room_id):
    a, b = workers[:2]
    async with (
        await connect(a.ws, room_id) as alice,
        await connect(b.ws, room_id, spectate=True) as watcher,
    ):
        assert watcher.welcome["spectator"] is True
        await alice.send_input({"x": 5})
        await state_until(watcher, lambda mirror: mirror.players.get(alice.pid) == {"x": 5})
        await watcher.send_input({"x": 1})
        error = await watcher.wait_for("error")
        assert error["code"] == "spectator"


# Seats are decided by the owner alone ----------------------------------------------------


async def test_seats_taken_on_several_workers_at_once_never_exceed_the_room(workers, room_id):
    """max_players is 4 here: ten joins at once over three workers seat exactly four."""

    async def try_join(n: int):
        try:
            return await connect(workers[n % WORKERS].ws, room_id)
        except Exception as exc:
            return exc

    results = await asyncio.gather(*(try_join(n) for n in range(10)))
    joined = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    try:
        assert len(joined) == 4
        assert {getattr(r, "code", None) for r in refused} == {4009}
        room = httpx.get(f"{workers[0].http}/rooms/{room_id}", timeout=5).json()
        assert room["players"] == 4
    finally:
        for client in joined:
            await client.close()


async def test_joins_while_the_room_ticks_each_start_with_their_welcome(workers, room_id):
    """A worker that already has members gets every tick's state; one of its clients whose
    join is still on its way to the owner must not get that state before its welcome (the
    client refuses such a join)."""
    async with (
        await connect(workers[0].ws, room_id) as alice,
        await connect(workers[1].ws, room_id, spectate=True),
        await connect(workers[2].ws, room_id, spectate=True),
    ):
        mover = asyncio.create_task(keep_moving(alice))

        async def late_watcher(n: int):
            await asyncio.sleep(n * 0.013)  # spread over several ticks
            return await connect(workers[1 + n % 2].ws, room_id, spectate=True)

        try:
            watchers = await asyncio.gather(*(late_watcher(n) for n in range(16)))
        finally:
            mover.cancel()
        for watcher in watchers:
            assert watcher.welcome["spectator"] is True
            await watcher.close()


async def keep_moving(client) -> None:
    n = 0
    while True:
        n += 1
        await client.send_input({"n": n})
        await asyncio.sleep(0.01)


async def test_a_second_connection_of_a_player_on_another_worker_replaces_the_first(
    workers, room_id
):
    a, b = workers[:2]
    first = await connect(a.ws, room_id)
    async with await connect(b.ws, room_id, resume=first.resume_token) as second:
        assert await first.wait_closed() == 4010
        assert second.pid == first.pid


async def test_a_full_room_refuses_on_every_worker_with_4009(workers, room_id):
    clients = [await connect(workers[0].ws, room_id) for _ in range(4)]
    try:
        for server in workers:
            assert_closed_with(await refusal(server.ws, room_id), 4009)
    finally:
        for client in clients:
            await client.close()


# The HTTP API, from any worker -----------------------------------------------------------


async def test_a_room_is_described_and_listed_by_every_worker(workers, room_id):
    async with await connect(workers[0].ws, room_id), await connect(workers[1].ws, room_id):
        await asyncio.sleep(0.2)  # the owner's directory write is one loop turn away
        for server in workers:
            described = httpx.get(f"{server.http}/rooms/{room_id}", timeout=5).json()
            assert described["players"] == 2
            assert described["tick"] >= 0
            listed = httpx.get(
                f"{server.http}/rooms", params={"after": room_id[:-1], "limit": 1000}, timeout=5
            ).json()
            assert room_id in [room["id"] for room in listed]


async def test_creating_an_existing_room_on_another_worker_is_409(workers, room_id):
    headers = {"Authorization": f"Bearer {ADMIN}"}
    created = httpx.post(f"{workers[0].http}/rooms", json={"id": room_id}, headers=headers)
    assert created.status_code == 201
    for server in workers:
        again = httpx.post(f"{server.http}/rooms", json={"id": room_id}, headers=headers)
        assert again.status_code == 409


async def test_matchmaking_from_every_worker_fills_the_same_room(workers, room_id):
    meta = {"mode": room_id}
    chosen = [
        httpx.post(f"{server.http}/matchmake", json={"meta": meta}, timeout=5).json()["room"]
        for server in workers[:1]
    ]
    async with await connect(workers[0].ws, chosen[0]):
        await asyncio.sleep(0.2)
        for server in workers:
            answer = httpx.post(f"{server.http}/matchmake", json={"meta": meta}, timeout=5)
            assert answer.json()["room"] == chosen[0]


async def test_kick_from_a_worker_that_does_not_own_the_room(workers, room_id):
    async with await connect(workers[0].ws, room_id) as alice:
        bob = await connect(workers[1].ws, room_id)
        owner = owner_of(workers, room_id)
        other = next(server for server in workers if server is not owner)
        kicked = httpx.post(
            f"{other.http}/rooms/{room_id}/kick",
            json={"pid": bob.pid},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=5,
        )
        assert kicked.status_code == 204
        assert await bob.wait_closed() == 4013
        left = await alice.wait_for("leave")
        assert left == {"t": "leave", "pid": bob.pid, "reason": "kicked"}


async def test_delete_from_a_worker_that_does_not_own_the_room(workers, room_id):
    alice = await connect(workers[0].ws, room_id)
    bob = await connect(workers[1].ws, room_id)
    owner = owner_of(workers, room_id)
    other = next(server for server in workers if server is not owner)
    deleted = httpx.delete(
        f"{other.http}/rooms/{room_id}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
    )
    assert deleted.status_code == 204
    assert await alice.wait_closed() == 4004
    assert await bob.wait_closed() == 4004
    await asyncio.sleep(0.2)
    assert httpx.get(f"{other.http}/rooms/{room_id}", timeout=5).status_code == 404


async def test_unknown_rooms_are_404_on_every_worker(workers, room_id):
    for server in workers:
        assert httpx.get(f"{server.http}/rooms/{room_id}", timeout=5).status_code == 404


async def test_a_resume_token_of_an_unknown_room_is_refused_4012_on_every_worker(workers, room_id):
    for server in workers:
        assert_closed_with(await refusal(server.ws, room_id, resume="nope"), 4012)


def test_every_worker_log_is_free_of_tracebacks(workers: list[ServerProcess]) -> None:
    for server in workers:
        assert "Traceback" not in server.log()


async def test_a_deleted_room_leaves_no_trace_in_the_directory(workers, room_id, redis_url):
    import redis

    async with await connect(workers[0].ws, room_id):
        await asyncio.sleep(0.2)
    owner = owner_of(workers, room_id)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    assert httpx.delete(f"{owner.http}/rooms/{room_id}", headers=headers).status_code == 204
    await asyncio.sleep(0.2)
    client = redis.Redis.from_url(redis_url)
    try:
        assert not client.sismember("tr:open:relay", room_id)
        assert client.hget("tr:dir", room_id) is None
        assert client.zscore("tr:ids", room_id) is None
    finally:
        client.close()


async def test_a_room_refused_by_one_workers_quota_can_be_made_by_another(
    servers, redis_url, room_id
):
    """The refusing worker had claimed the room first: it gives the claim back, or the
    other worker would forward the join to an owner without the room (4004)."""
    full = servers.fresh(redis_url=redis_url, max_rooms=1)
    roomy = servers.fresh(redis_url=redis_url)
    for server in (full, roomy):
        wait_ready(server)
    async with await connect(full.ws, f"{room_id}-first"):
        assert_closed_with(await refusal(full.ws, room_id), 1013)
        async with await connect(roomy.ws, room_id) as player:
            assert player.welcome["room"] == room_id


def test_workers_tick_their_rooms_at_phases_apart(workers: list[ServerProcess]) -> None:
    """Each worker's states (and the inputs forwarded to it) leave in a loop turn of their
    own: the phases of three workers lie at least a fifth of a period apart."""
    phases = sorted(
        httpx.get(f"{server.http}/stats", timeout=5).json()["cluster"]["tick_phase"]
        for server in workers
    )
    gaps = [later - earlier for earlier, later in itertools.pairwise(phases)]
    gaps.append(1 + phases[0] - phases[-1])
    assert min(gaps) >= 0.2, phases
