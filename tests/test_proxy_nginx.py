"""deploy/nginx.conf for real: a real nginx in front of two workers on one redis-server.

Everything a player does here goes through nginx (round robin, nothing sticky), and every
worker is a separate ``tickrelay serve`` process, as two hosts would be. Auth is on and the
workers have an Origin allowlist, so tokens and Origin headers must cross the proxy too.
What nginx must not break: the WebSocket upgrade and subprotocol, the Authorization and
Origin headers, close codes, percent-encoded room ids, idle connections (the heartbeat
keeps them alive), and a worker's death, the room's owner or not (its players resume on
the other, which takes the room over when it was the owner's).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Origin, Subprotocol

from tests.conftest import SECRET, ServerPool, ServerProcess
from tests.helpers import assert_closed_with, refusal, state_until, wait_until
from tests.nginx_support import Nginx, NginxNotFound, find_nginx, start_nginx
from tests.redis_support import RedisServer
from tests.test_cluster_rooms import wait_ready
from tickrelay.client import RoomClient, connect
from tickrelay.protocol import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, CloseCode
from tickrelay.server.auth import mint

ORIGIN = "https://game.example"
WORKER_SETTINGS = {
    "auth_secret": SECRET,
    "allowed_origins": ORIGIN,
    # Pings every second: nginx's read timeout in the test is 3 s (see nginx_support).
    "heartbeat_interval": 1,
    "heartbeat_timeout": 5,
    "resume_grace": 15,
}


@dataclass
class Stack:
    """nginx in front of two workers."""

    nginx: Nginx
    workers: tuple[ServerProcess, ServerProcess]

    async def join(self, room_id: str, pid: str, **options: object) -> RoomClient:
        """A player through nginx, with its token and the allowed Origin."""
        options.setdefault("token", mint(SECRET, pid, rooms=[room_id]))
        options.setdefault("origin", ORIGIN)
        return await connect(self.nginx.ws, room_id, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    try:
        return find_nginx()
    except NginxNotFound as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def redis_url(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), redis_binary)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def start_stack(servers: ServerPool, redis_url: str, nginx_binary: str, directory: Path) -> Stack:
    a = servers.fresh(redis_url=redis_url, **WORKER_SETTINGS)
    b = servers.fresh(redis_url=redis_url, **WORKER_SETTINGS)
    for worker in (a, b):
        wait_ready(worker)
    return Stack(start_nginx(nginx_binary, directory, (a.port, b.port)), (a, b))


@pytest.fixture(scope="module")
def stack(servers, redis_url, nginx_binary, tmp_path_factory) -> Iterator[Stack]:
    started = start_stack(servers, redis_url, nginx_binary, tmp_path_factory.mktemp("nginx"))
    yield started
    started.nginx.stop()


@pytest.fixture
def doomed_stack(servers, redis_url, nginx_binary, tmp_path) -> Iterator[Stack]:
    """A stack of the test's own: the test kills one of its workers."""
    started = start_stack(servers, redis_url, nginx_binary, tmp_path / "nginx")
    yield started
    started.nginx.stop()


def open_connections(worker: ServerProcess) -> int:
    return httpx.get(f"{worker.http}/stats", timeout=5).json()["connections"]


def takeovers(worker: ServerProcess) -> float:
    """The worker's count of rooms taken over, as Prometheus would read it."""
    text = httpx.get(f"{worker.http}/metrics", timeout=5).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    return next(s.value for s in samples if s.name == "tickrelay_cluster_takeovers_total")


# Spreading and playing ---------------------------------------------------------------------


async def test_players_of_one_room_land_on_both_workers_and_play_together(stack, room_id):
    players = [await stack.join(room_id, f"p{n}") for n in range(4)]
    try:
        assert all(open_connections(worker) >= 1 for worker in stack.workers)
        for n, player in enumerate(players):
            await player.send_input({"n": n})
        everyone = {f"p{n}": {"n": n} for n in range(4)}
        for player in players:
            await state_until(player, lambda mirror: mirror.players == everyone)
    finally:
        for player in players:
            await player.close()


# Headers and the handshake -----------------------------------------------------------------


@pytest.mark.parametrize("offered", [JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL])
async def test_the_subprotocol_offer_and_choice_pass_through(stack, room_id, offered):
    token = mint(SECRET, "sub", rooms=[room_id])
    async with ws_connect(
        f"{stack.nginx.ws}/ws/rooms/{room_id}",
        subprotocols=[Subprotocol(offered)],
        origin=Origin(ORIGIN),
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        assert ws.subprotocol == offered
        first = await asyncio.wait_for(ws.recv(), 5)
    if offered == JSON_SUBPROTOCOL:
        assert json.loads(first)["t"] == "welcome"
    else:
        assert isinstance(first, bytes)


async def test_a_bearer_token_in_the_authorization_header_works_through_nginx(stack, room_id):
    token = mint(SECRET, "header-player", rooms=[room_id])
    async with await stack.join(room_id, "header-player", token=token, token_in_header=True) as p:
        assert p.pid == "header-player"


async def test_a_disallowed_origin_is_refused_at_the_handshake_through_nginx(stack, room_id):
    token = mint(SECRET, "intruder", rooms=[room_id])
    refused = await refusal(stack.nginx.ws, room_id, token=token, origin="https://evil.example")
    assert refused.status == 403


# Close codes -------------------------------------------------------------------------------


async def test_a_join_without_token_gets_close_4001_through_nginx(stack, room_id):
    refused = await refusal(stack.nginx.ws, room_id, origin=ORIGIN)
    assert_closed_with(refused, CloseCode.UNAUTHORIZED)


async def test_a_token_for_another_room_gets_close_4003_through_nginx(stack, room_id):
    token = mint(SECRET, "lost", rooms=["elsewhere"])
    refused = await refusal(stack.nginx.ws, room_id, token=token, origin=ORIGIN)
    assert_closed_with(refused, CloseCode.FORBIDDEN)


async def test_a_percent_encoded_room_id_gets_close_4000_through_nginx(stack):
    token = mint(SECRET, "slash")
    refused = await refusal(stack.nginx.ws, "a/b", token=token, origin=ORIGIN)  # sent as a%2Fb
    assert_closed_with(refused, CloseCode.BAD_REQUEST)


# Idle connections and logs -----------------------------------------------------------------


async def test_an_idle_player_outlives_nginx_read_timeout_thanks_to_the_heartbeat(stack, room_id):
    async with await stack.join(room_id, "idle") as idle:
        await asyncio.sleep(5)  # nginx's read timeout here is 3 s; the workers ping every 1 s
        assert idle.connected
        assert idle.reconnects == 0
        seq = await idle.send_input({"still": "here"})
        await state_until(idle, lambda mirror: mirror.acks.get("idle") == seq)


async def test_the_access_log_keeps_no_join_token(stack, room_id):
    token = mint(SECRET, "logged", rooms=[room_id])
    async with await stack.join(room_id, "logged", token=token):  # ?token=... in the URL
        pass
    await wait_until(lambda: f"/ws/rooms/{room_id}" in stack.nginx.access_log())
    log = stack.nginx.access_log()
    assert token not in log
    assert "token=" not in log


async def test_metrics_are_not_served_through_the_proxy(stack):
    async with httpx.AsyncClient(base_url=stack.nginx.http, timeout=5) as http:
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/readyz")).status_code == 200


# A worker's death --------------------------------------------------------------------------


@pytest.mark.parametrize("victim", ["other", "owner"])
async def test_players_of_a_killed_worker_resume_through_nginx_on_the_other(
    doomed_stack, room_id, victim
):
    """The room is made on the first worker; either the other one is killed, or the owner
    itself (the survivor then takes the room over from its checkpoint). Either way, the
    dead worker's players come back through nginx on the survivor, under the same pid."""
    owner, other = doomed_stack.workers
    doomed, survivor = (other, owner) if victim == "other" else (owner, other)
    answer = httpx.post(
        f"{owner.http}/rooms", json={"id": room_id}, headers=owner.admin_headers(), timeout=5
    )
    assert answer.status_code == 201, answer.text
    players = [await doomed_stack.join(room_id, f"p{n}", auto_reconnect=True) for n in range(4)]
    try:
        on_doomed = open_connections(doomed)
        assert on_doomed >= 1
        doomed.process.kill()
        await wait_until(lambda: sum(p.reconnects for p in players) == on_doomed, timeout=15)
        assert [p.pid for p in players] == [f"p{n}" for n in range(4)]
        assert all(p.resumed and p.resume_failures == 0 for p in players if p.reconnects)
        assert open_connections(survivor) == len(players)
        for n, player in enumerate(players):
            await player.send_input({"after": n})
        everyone = {f"p{n}": {"after": n} for n in range(4)}
        for player in players:
            await state_until(player, lambda mirror: mirror.players == everyone, timeout=10)
        assert takeovers(survivor) == (1 if victim == "owner" else 0)
    finally:
        for player in players:
            await player.close()
