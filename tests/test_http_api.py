"""The HTTP API (contract section 10): health, rooms, matchmaking, operator actions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN
from tickrelay.client import ConnectRefused, connect

DESCRIPTION_KEYS = {
    "id",
    "players",
    "spectators",
    "max_players",
    "max_spectators",
    "tick_rate",
    "tick",
    "private",
    "logic",
    "meta",
}
NO_AUTH: dict[str, str] = {}
WRONG_AUTH = {"Authorization": "Bearer not-the-admin-token"}


@pytest.fixture
async def http(server) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the default server, without credentials."""
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as client:
        yield client


@pytest.fixture
def admin(server) -> dict[str, str]:
    return server.admin_headers()


async def listed(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every public room: ``GET /rooms`` page after page, following its ``next`` links."""
    rooms: list[dict[str, Any]] = []
    url: str | None = "/rooms"
    while url is not None:
        response = await http.get(url)
        assert response.status_code == 200
        rooms += response.json()
        url = response.links.get("next", {}).get("url")
    return rooms


async def create(http: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await http.post("/rooms", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


# Health ------------------------------------------------------------------------------------


async def test_healthz_is_200(http):
    assert (await http.get("/healthz")).status_code == 200


async def test_readyz_is_200_while_accepting_players(http):
    assert (await http.get("/readyz")).status_code == 200


# POST /rooms -------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [NO_AUTH, WRONG_AUTH], ids=["no-token", "wrong-token"])
async def test_create_room_without_the_admin_token_is_401(http, room_id, headers):
    response = await http.post("/rooms", json={"id": room_id}, headers=headers)
    assert response.status_code == 401
    assert (await http.get(f"/rooms/{room_id}")).status_code == 404


async def test_create_room_answers_201_with_the_room_description(http, admin, room_id):
    body = {
        "id": room_id,
        "tick_rate": 30,
        "max_players": 3,
        "max_spectators": 2,
        "private": True,
        "logic": "relay",
        "meta": {"mode": "duel", "level": 3},
    }
    response = await http.post("/rooms", json=body, headers=admin)
    assert response.status_code == 201
    described = response.json()
    assert set(described) == DESCRIPTION_KEYS
    tick = described.pop("tick")
    assert isinstance(tick, int) and tick >= 0
    assert described == {**body, "players": 0, "spectators": 0}


async def test_create_room_with_defaults_describes_the_contract_defaults(http, admin, room_id):
    described = await create(http, admin, id=room_id)
    assert {
        k: described[k]
        for k in ("tick_rate", "max_players", "max_spectators", "private", "logic", "meta")
    } == {
        "tick_rate": 20,
        "max_players": 16,
        "max_spectators": 64,
        "private": False,
        "logic": "relay",
        "meta": {},
    }


async def test_create_room_without_an_id_generates_one(http, admin):
    first = await create(http, admin)
    second = await create(http, admin)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", first["id"])
    assert first["id"] != second["id"]
    assert (await http.get(f"/rooms/{first['id']}")).json()["id"] == first["id"]


async def test_create_room_with_an_existing_id_is_409(http, admin, room_id):
    await create(http, admin, id=room_id, meta={"first": True})
    response = await http.post("/rooms", json={"id": room_id}, headers=admin)
    assert response.status_code == 409
    assert (await http.get(f"/rooms/{room_id}")).json()["meta"] == {"first": True}


async def test_create_room_with_the_id_of_a_room_created_by_a_join_is_409(
    server, http, admin, room_id
):
    async with await connect(server.ws, room_id):
        response = await http.post("/rooms", json={"id": room_id}, headers=admin)
    assert response.status_code == 409


INVALID_OPTIONS = {
    "tick_rate-0": {"tick_rate": 0},
    "tick_rate-129": {"tick_rate": 129},
    "max_players-0": {"max_players": 0},
    "max_players-1025": {"max_players": 1025},
    "max_spectators-minus-1": {"max_spectators": -1},
    "max_spectators-10001": {"max_spectators": 10001},
    "meta-list": {"meta": [1, 2]},
    "meta-string": {"meta": "mode=duel"},
    "meta-over-4KiB": {"meta": {"blob": "x" * 4200}},
    "meta-5-levels": {"meta": {"a": {"b": {"c": {"d": {}}}}}},
    "meta-5-levels-of-arrays": {"meta": {"a": [[[[]]]]}},
    "unknown-logic": {"logic": "no-such-logic"},
    "id-with-slash": {"id": "a/b"},
    "id-with-space": {"id": "a b"},
    "id-with-dot": {"id": "a.b"},
    "id-non-ascii": {"id": "caf\u00e9"},
    "id-empty": {"id": ""},
    "id-65-chars": {"id": "x" * 65},
    "id-trailing-newline": {"id": "abc\n"},
}


@pytest.mark.parametrize("body", INVALID_OPTIONS.values(), ids=INVALID_OPTIONS.keys())
async def test_create_room_with_invalid_options_is_422(http, admin, body):
    response = await http.post("/rooms", json=body, headers=admin)
    assert response.status_code == 422
    rooms = await listed(http)
    if "id" in body:
        assert body["id"] not in {room["id"] for room in rooms}


BOUNDS = {
    "tick_rate-1": {"tick_rate": 1},
    "tick_rate-128": {"tick_rate": 128},
    "max_players-1": {"max_players": 1},
    "max_players-1024": {"max_players": 1024},
    "max_spectators-0": {"max_spectators": 0},
    "max_spectators-10000": {"max_spectators": 10000},
    "meta-3000-bytes": {"meta": {"blob": "x" * 3000}},
    "meta-4-levels": {"meta": {"a": {"b": [{"d": 1}]}}},
}


@pytest.mark.parametrize("body", BOUNDS.values(), ids=BOUNDS.keys())
async def test_create_room_accepts_the_bounds_of_each_option(http, admin, room_id, body):
    described = await create(http, admin, id=room_id, **body)
    assert {k: described[k] for k in body} == body


async def test_create_room_accepts_an_id_of_64_characters(http, admin, room_id):
    long_id = room_id.ljust(64, "x")
    assert (await create(http, admin, id=long_id))["id"] == long_id


async def test_created_room_uses_its_tick_rate(server, http, admin, room_id):
    await create(http, admin, id=room_id, tick_rate=10)
    async with await connect(server.ws, room_id) as alice:
        assert alice.welcome["rate"] == 10


async def test_created_room_uses_its_max_players(server, http, admin, room_id):
    await create(http, admin, id=room_id, max_players=1)
    async with await connect(server.ws, room_id):
        with pytest.raises(ConnectRefused) as refused:
            await connect(server.ws, room_id)
    assert refused.value.code == 4009


def nested(levels: int) -> dict[str, Any]:
    """An object ``levels`` levels deep, itself included: ``{"a": {"a": ... 1}}``."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "path, auth", [("/rooms", True), ("/matchmake", False)], ids=["create", "matchmake"]
)
async def test_deeply_nested_meta_is_422_and_the_room_listing_keeps_working(
    http, admin, path, auth
):
    response = await http.post(path, json={"meta": nested(300)}, headers=admin if auth else {})
    assert response.status_code == 422
    assert (await http.get("/rooms")).status_code == 200


# GET /rooms, GET /rooms/{id} ---------------------------------------------------------------


async def test_list_rooms_shows_public_rooms_with_their_player_counts(server, http, admin, room_id):
    await create(http, admin, id=room_id)
    async with (
        await connect(server.ws, room_id),
        await connect(server.ws, room_id),
        await connect(server.ws, room_id, spectate=True),
    ):
        rooms = {room["id"]: room for room in await listed(http)}
    assert set(rooms[room_id]) == DESCRIPTION_KEYS
    assert (rooms[room_id]["players"], rooms[room_id]["spectators"]) == (2, 1)


async def test_list_rooms_counts_away_players(server, http, room_id):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        await bob.close()  # a drop: bob keeps his seat for the resume grace
        await alice.wait_for("away")
        [room] = [r for r in await listed(http) if r["id"] == room_id]
    assert room["players"] == 2


async def test_list_rooms_leaves_out_private_rooms(http, admin, room_id):
    await create(http, admin, id=room_id, private=True)
    assert room_id not in {room["id"] for room in await listed(http)}


async def test_list_rooms_comes_in_pages_in_id_order_with_a_next_link(http, admin, room_id):
    for suffix in ("c", "a", "b"):
        await create(http, admin, id=f"{room_id}-{suffix}")
    first = await http.get("/rooms", params={"limit": 2, "after": f"{room_id}-"})
    assert [room["id"] for room in first.json()] == [f"{room_id}-a", f"{room_id}-b"]
    following = await http.get(first.links["next"]["url"])
    assert following.json()[0]["id"] == f"{room_id}-c"


async def test_list_rooms_gives_100_rooms_by_default_and_no_next_link_on_the_last_page(servers):
    server = servers.fresh()
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        for _ in range(101):
            await create(http, server.admin_headers())
        first = await http.get("/rooms")
        last = await http.get(first.links["next"]["url"])
    assert len(first.json()) == 100
    assert len(last.json()) == 1
    assert "next" not in last.links


@pytest.mark.parametrize("limit", [0, 1001], ids=["zero", "over-1000"])
async def test_list_rooms_with_a_limit_out_of_bounds_is_422(http, limit):
    assert (await http.get("/rooms", params={"limit": limit})).status_code == 422


async def test_get_room_describes_a_private_room(http, admin, room_id):
    created = await create(http, admin, id=room_id, private=True)
    response = await http.get(f"/rooms/{room_id}")
    assert response.status_code == 200
    described = response.json()
    assert described["private"] is True
    assert {k: v for k, v in described.items() if k != "tick"} == {
        k: v for k, v in created.items() if k != "tick"
    }


async def test_get_room_of_an_unknown_id_is_404(http, room_id):
    assert (await http.get(f"/rooms/{room_id}")).status_code == 404


# POST /matchmake ---------------------------------------------------------------------------


async def test_matchmake_answers_a_room_and_its_path(http, room_id):
    response = await http.post("/matchmake", json={"meta": {"mode": room_id}})
    assert response.status_code == 200
    body = response.json()
    assert body == {"room": body["room"], "path": f"/ws/rooms/{body['room']}"}


async def test_matchmake_picks_the_fullest_public_room_with_a_free_seat(
    server, http, admin, room_id
):
    meta = {"mode": room_id}
    rooms = {
        "one": {"max_players": 4, "meta": meta, "joins": 1},
        "two": {"max_players": 4, "meta": meta, "joins": 2},
        "full": {"max_players": 3, "meta": meta, "joins": 3},
        "private": {"max_players": 8, "meta": meta, "private": True, "joins": 3},
        "other-meta": {"max_players": 8, "meta": {"mode": "else"}, "joins": 3},
    }
    clients = []
    try:
        for name, options in rooms.items():
            joins = options.pop("joins")
            await create(http, admin, id=f"{room_id}-{name}", **options)
            for _ in range(joins):
                clients.append(await connect(server.ws, f"{room_id}-{name}"))
        response = await http.post("/matchmake", json={"meta": meta})
    finally:
        for client in clients:
            await client.close()
    assert response.json()["room"] == f"{room_id}-two"


async def test_matchmake_needs_every_given_meta_key_with_the_same_value(http, admin, room_id):
    await create(http, admin, id=room_id, meta={"mode": room_id, "map": "dune"})
    subset = await http.post("/matchmake", json={"meta": {"mode": room_id}})
    same = await http.post("/matchmake", json={"meta": {"mode": room_id, "map": "dune"}})
    other = await http.post("/matchmake", json={"meta": {"mode": room_id, "map": "moon"}})
    assert subset.json()["room"] == room_id
    assert same.json()["room"] == room_id
    assert other.json()["room"] != room_id


async def test_matchmake_ignores_private_and_full_rooms(server, http, admin, room_id):
    meta = {"mode": room_id}
    await create(http, admin, id=f"{room_id}-private", meta=meta, private=True)
    await create(http, admin, id=f"{room_id}-full", meta=meta, max_players=1)
    async with await connect(server.ws, f"{room_id}-full"):
        response = await http.post("/matchmake", json={"meta": meta})
    assert response.json()["room"] not in (f"{room_id}-private", f"{room_id}-full")


async def test_matchmake_creates_a_public_room_with_the_meta_when_none_fits(http, room_id):
    meta = {"mode": room_id, "level": 2}
    response = await http.post("/matchmake", json={"meta": meta})
    new_id = response.json()["room"]
    described = (await http.get(f"/rooms/{new_id}")).json()
    assert (described["meta"], described["private"], described["logic"]) == (meta, False, "relay")
    again = await http.post("/matchmake", json={"meta": meta})
    assert again.json()["room"] == new_id


async def test_matchmake_skips_a_room_while_it_is_full_and_picks_it_again_when_a_seat_frees(
    server, http, admin, room_id
):
    meta = {"mode": room_id}
    await create(http, admin, id=room_id, meta=meta, max_players=1)
    alice = await connect(server.ws, room_id)
    try:
        while_full = (await http.post("/matchmake", json={"meta": meta})).json()["room"]
        assert await alice.leave() == 1000
    finally:
        await alice.close()
    freed = (await http.post("/matchmake", json={"meta": meta})).json()["room"]
    assert (while_full != room_id, freed) == (True, room_id)


async def test_matchmake_never_picks_a_deleted_room(http, admin, room_id):
    meta = {"mode": room_id}
    await create(http, admin, id=room_id, meta=meta)
    assert (await http.delete(f"/rooms/{room_id}", headers=admin)).status_code == 204
    assert (await http.post("/matchmake", json={"meta": meta})).json()["room"] != room_id


async def test_matchmake_compares_nested_meta_values_whole(http, admin, room_id):
    await create(http, admin, id=room_id, meta={"mode": room_id, "rules": {"teams": [2, 2]}})
    same = {"mode": room_id, "rules": {"teams": [2, 2]}}
    other = {"mode": room_id, "rules": {"teams": [2]}}
    assert (await http.post("/matchmake", json={"meta": same})).json()["room"] == room_id
    assert (await http.post("/matchmake", json={"meta": other})).json()["room"] != room_id


async def test_matchmake_with_an_unknown_logic_is_422(http, room_id):
    response = await http.post(
        "/matchmake", json={"logic": "no-such-logic", "meta": {"mode": room_id}}
    )
    assert response.status_code == 422


# DELETE /rooms/{id} ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [NO_AUTH, WRONG_AUTH], ids=["no-token", "wrong-token"])
async def test_delete_room_without_the_admin_token_is_401(http, admin, room_id, headers):
    await create(http, admin, id=room_id)
    assert (await http.delete(f"/rooms/{room_id}", headers=headers)).status_code == 401
    assert (await http.get(f"/rooms/{room_id}")).status_code == 200


async def test_delete_unknown_room_is_404(http, admin, room_id):
    assert (await http.delete(f"/rooms/{room_id}", headers=admin)).status_code == 404


async def test_delete_room_is_204_and_closes_its_members_with_4004(server, http, admin, room_id):
    async with (
        await connect(server.ws, room_id) as alice,
        await connect(server.ws, room_id, spectate=True) as watcher,
    ):
        response = await http.delete(f"/rooms/{room_id}", headers=admin)
        assert response.status_code == 204
        assert await alice.wait_closed() == 4004
        assert await watcher.wait_closed() == 4004
    assert (await http.get(f"/rooms/{room_id}")).status_code == 404


# POST /rooms/{id}/kick ---------------------------------------------------------------------


@pytest.mark.parametrize("headers", [NO_AUTH, WRONG_AUTH], ids=["no-token", "wrong-token"])
async def test_kick_without_the_admin_token_is_401(server, http, room_id, headers):
    async with await connect(server.ws, room_id) as alice:
        response = await http.post(
            f"/rooms/{room_id}/kick", json={"pid": alice.pid}, headers=headers
        )
        assert response.status_code == 401
        await alice.ping()
        assert alice.connected


async def test_kick_in_an_unknown_room_is_404(http, admin, room_id):
    response = await http.post(f"/rooms/{room_id}/kick", json={"pid": "nobody"}, headers=admin)
    assert response.status_code == 404


async def test_kick_of_an_unknown_pid_is_404(server, http, admin, room_id):
    async with await connect(server.ws, room_id):
        response = await http.post(f"/rooms/{room_id}/kick", json={"pid": "nobody"}, headers=admin)
    assert response.status_code == 404


async def test_kick_is_204_closes_the_player_4013_and_others_get_leave_kicked(
    server, http, admin, room_id
):
    async with await connect(server.ws, room_id) as alice, await connect(server.ws, room_id) as bob:
        response = await http.post(f"/rooms/{room_id}/kick", json={"pid": bob.pid}, headers=admin)
        assert response.status_code == 204
        assert await bob.wait_closed() == 4013
        leave = await alice.wait_for("leave")
    assert leave == {"t": "leave", "pid": bob.pid, "reason": "kicked"}


# Without an admin token configured ---------------------------------------------------------


@pytest.fixture
async def open_http(servers) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a server with no admin token configured."""
    async with httpx.AsyncClient(base_url=servers.get(admin_token="").http, timeout=5) as client:
        yield client


async def test_without_an_admin_token_configured_anyone_may_create_rooms(open_http, room_id):
    response = await open_http.post("/rooms", json={"id": room_id})
    assert response.status_code == 201


@pytest.mark.parametrize("headers", [NO_AUTH, WRONG_AUTH], ids=["no-token", "some-token"])
async def test_without_an_admin_token_configured_delete_and_kick_are_always_401(
    open_http, room_id, headers
):
    assert (await open_http.post("/rooms", json={"id": room_id})).status_code == 201
    kick = await open_http.post(f"/rooms/{room_id}/kick", json={"pid": "x"}, headers=headers)
    delete = await open_http.delete(f"/rooms/{room_id}", headers=headers)
    assert (kick.status_code, delete.status_code) == (401, 401)
    assert (await open_http.get(f"/rooms/{room_id}")).status_code == 200


# Idle disposal -----------------------------------------------------------------------------


async def test_a_created_room_nobody_joins_is_disposed_after_the_idle_timeout(servers, room_id):
    server = servers.get(idle_timeout=1.0)
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        response = await http.post(
            "/rooms", json={"id": room_id}, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert response.status_code == 201
        async with asyncio.timeout(5):
            while (await http.get(f"/rooms/{room_id}")).status_code == 200:
                await asyncio.sleep(0.1)
        assert (await http.get(f"/rooms/{room_id}")).status_code == 404


@pytest.mark.parametrize(
    "options",
    [{"tick_rate": True}, {"tick_rate": "10"}, {"private": "yes"}, {"max_players": 2.0}],
    ids=["bool-tick-rate", "string-tick-rate", "string-private", "float-max-players"],
)
async def test_create_room_refuses_options_of_the_wrong_json_type(server, options):
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post("/rooms", json=options, headers=server.admin_headers())
    assert response.status_code == 422


async def test_stats_report_connections_rooms_and_tick_lag(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.wait_for("snap")
        async with httpx.AsyncClient(base_url=server.http) as http:
            stats = (await http.get("/stats")).json()
    assert stats["connections"] >= 1
    assert stats["players"] >= 1
    assert stats["tick"]["ticks"] >= 1
    assert stats["tick"]["lag_p99_ms"] >= 0


async def test_metrics_are_in_prometheus_text_format(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.wait_for("snap")
        async with httpx.AsyncClient(base_url=server.http) as http:
            response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert "# TYPE tickrelay_tick_lag_seconds histogram" in lines
    connections = next(line for line in lines if line.startswith("tickrelay_connections "))
    assert float(connections.split()[1]) >= 1
