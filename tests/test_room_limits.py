"""What rooms may cost a server (issue 8, item 3): an idle room costs no tick, rooms per
process and room creations per client address are bounded, the listing comes in pages."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest

from tickrelay.client import ConnectRefused, connect

STATS_SETTLE = 0.5
"""Seconds to let rooms run before reading the tick counter: ten ticks at the default rate."""


async def total_ticks(http: httpx.AsyncClient) -> int:
    return (await http.get("/stats")).json()["tick"]["ticks"]


async def create_rooms(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
    """``count`` rooms through ``POST /rooms``, a few dozen requests in flight at a time."""
    for start in range(0, count, 50):
        answers = await asyncio.gather(
            *(http.post("/rooms", json={}, headers=headers) for _ in range(start, start + 50))
        )
        assert [a.status_code for a in answers] == [201] * len(answers)


async def create_rooms_one_by_one(
    http: httpx.AsyncClient, headers: dict[str, str], count: int, **body: Any
) -> None:
    for _ in range(count):
        response = await http.post("/rooms", json=body, headers=headers)
        assert response.status_code == 201, response.text


# An idle room costs nothing ---------------------------------------------------------------


async def test_a_thousand_empty_rooms_run_no_tick(servers):
    server = servers.fresh()
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        await create_rooms(http, server.admin_headers(), 1000)
        await asyncio.sleep(STATS_SETTLE)
        stats: dict[str, Any] = (await http.get("/stats")).json()
    assert stats["rooms"] == 1000
    assert stats["tick"]["ticks"] == 0


# Rooms per process ------------------------------------------------------------------------


async def test_creating_a_room_past_max_rooms_is_503(servers):
    server = servers.fresh(max_rooms=2)
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        await create_rooms_one_by_one(http, server.admin_headers(), 2)
        created = await http.post("/rooms", json={}, headers=server.admin_headers())
        matched = await http.post("/matchmake", json={"meta": {"new": True}})
        assert (created.status_code, matched.status_code) == (503, 503)
        assert (await http.get("/stats")).json()["rooms"] == 2


async def test_a_join_that_would_create_a_room_past_max_rooms_is_closed_1013(servers, room_id):
    server = servers.fresh(max_rooms=1)
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        await create_rooms_one_by_one(http, server.admin_headers(), 1, id=room_id)
    with pytest.raises(ConnectRefused) as refused:
        await connect(server.ws, f"{room_id}-new")
    assert refused.value.code == 1013
    async with await connect(server.ws, room_id) as alice:  # an existing room still admits
        assert alice.welcome["room"] == room_id


async def test_a_disposed_room_frees_its_place_under_max_rooms(servers, room_id):
    server = servers.fresh(max_rooms=1)
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        await create_rooms_one_by_one(http, server.admin_headers(), 1, id=room_id)
        deleted = await http.delete(f"/rooms/{room_id}", headers=server.admin_headers())
        assert deleted.status_code == 204
        assert (await http.post("/matchmake", json={})).status_code == 200


# Room creations per client address --------------------------------------------------------

SLOW_CREATION = {"room_create_rate": 0.01, "room_create_burst": 2}
"""Two rooms at once, then one per 100 s: a test never sees a refill."""

_addresses = itertools.count(1)


@pytest.fixture
def address() -> str:
    """A client address of the test's own, given to the server through a trusted proxy's
    ``X-Forwarded-For`` (the test client is on loopback, trusted by default)."""
    return f"2001:db8::{next(_addresses):x}"


def via(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def matchmake_new(http: httpx.AsyncClient, address: str) -> httpx.Response:
    """A matchmake whose meta no room has: it must create a room."""
    return await http.post(
        "/matchmake", json={"meta": {"nonce": next(_addresses)}}, headers=via(address)
    )


async def test_matchmaking_new_rooms_past_the_burst_is_429_with_retry_after(servers, address):
    server = servers.get(**SLOW_CREATION)
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        answers = [await matchmake_new(http, address) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1


async def test_a_join_creating_a_room_past_the_burst_is_closed_1013(servers, address, room_id):
    server = servers.get(**SLOW_CREATION)
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        assert [(await matchmake_new(http, address)).status_code for _ in range(2)] == [200, 200]
    with pytest.raises(ConnectRefused) as refused:
        await connect(server.ws, room_id, headers=via(address))
    assert refused.value.code == 1013


async def test_matchmaking_into_an_existing_room_costs_no_creation(servers, address, room_id):
    server = servers.get(**SLOW_CREATION)
    meta = {"mode": room_id}
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        answers = [
            await http.post("/matchmake", json={"meta": meta}, headers=via(address))
            for _ in range(5)
        ]
        assert {a.status_code for a in answers} == {200}
        assert len({a.json()["room"] for a in answers}) == 1
        assert (await matchmake_new(http, address)).status_code == 200


async def test_the_creation_rate_is_counted_per_client_address(servers, address):
    server = servers.get(**SLOW_CREATION)
    other = f"2001:db8::ff:{next(_addresses):x}"
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        for _ in range(2):
            await matchmake_new(http, address)
        assert (await matchmake_new(http, address)).status_code == 429
        assert (await matchmake_new(http, other)).status_code == 200


async def test_an_untrusted_peer_cannot_pick_its_address_with_x_forwarded_for(servers):
    server = servers.fresh(forwarded_allow_ips="", **SLOW_CREATION)
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        answers = [await matchmake_new(http, f"2001:db8::ff:{n}") for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]


async def test_the_operator_is_not_rate_limited(servers, address):
    server = servers.get(**SLOW_CREATION)
    headers = {**server.admin_headers(), **via(address)}
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        answers = [await http.post("/rooms", json={}, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [201] * 4
