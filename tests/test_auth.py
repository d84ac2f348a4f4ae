"""Auth (contract section 7) and the refusal order around it (section 1), on a real server."""

from __future__ import annotations

import base64
import json
import time
import warnings

import httpx
import jwt
import pytest

from tests.conftest import SECRET
from tests.helpers import PRESENCE, assert_closed_with, create_room, refusal, state_until
from tickrelay.client import connect
from tickrelay.server.auth import mint


@pytest.fixture
def auth_server(servers):
    return servers.get(auth_secret=SECRET)


def token_for(sub: str, **kwargs) -> str:
    return mint(SECRET, sub, **kwargs)


def signed(claims: dict, algorithm: str = "HS256", secret: str = SECRET) -> str:
    """Signed with the server's own secret unless told otherwise (only the claims differ)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)  # HS512 wants 64 bytes
        return jwt.encode(claims, secret, algorithm=algorithm)


def unsigned(claims: dict) -> str:
    """A JWT with ``alg: none`` and no signature."""

    def part(value: dict) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# Valid tokens -----------------------------------------------------------------------------


async def test_valid_token_joins_with_pid_equal_to_sub(auth_server, room_id):
    async with await connect(auth_server.ws, room_id, token=token_for("alice")) as client:
        assert client.pid == "alice"


async def test_token_listing_the_room_joins(auth_server, room_id):
    token = token_for("alice", rooms=["elsewhere", room_id])
    async with await connect(auth_server.ws, room_id, token=token) as client:
        assert client.pid == "alice"


async def test_token_in_authorization_header_joins(auth_server, room_id):
    token = token_for("alice")
    async with await connect(auth_server.ws, room_id, token=token, token_in_header=True) as c:
        assert c.pid == "alice"


async def test_authorization_header_wins_over_query_token(auth_server, room_id):
    base = f"{auth_server.ws}?token={token_for('from-query')}"
    token = token_for("from-header")
    async with await connect(base, room_id, token=token, token_in_header=True) as client:
        assert client.pid == "from-header"


async def test_valid_authorization_header_wins_over_a_bad_query_token(auth_server, room_id):
    base = f"{auth_server.ws}?token=garbage"
    token = token_for("alice")
    async with await connect(base, room_id, token=token, token_in_header=True) as client:
        assert client.pid == "alice"


async def test_spectate_only_token_forces_spectator(auth_server, room_id):
    token = token_for("watcher", spectate_only=True)
    async with await connect(auth_server.ws, room_id, token=token) as client:
        assert client.welcome["spectator"] is True
        snap = await client.wait_for("snap")
        assert "watcher" not in snap["s"]["players"]


async def test_spectate_only_token_cannot_take_over_a_seat(auth_server, room_id):
    async with await connect(auth_server.ws, room_id, token=token_for("carol")) as seated:
        refused = await refusal(
            auth_server.ws, room_id, token=token_for("carol", spectate_only=True)
        )
        assert_closed_with(refused, 4003)
        assert seated.close_code is None
        seq = await seated.send_input({"still": "here"})
        await state_until(seated, lambda mirror: mirror.last_ack("carol") >= seq)


# Refused tokens ---------------------------------------------------------------------------


def expired_claims() -> dict:
    return {"sub": "alice", "exp": int(time.time()) - 120}  # beyond any leeway (<= 30 s)


def valid_exp() -> int:
    return int(time.time()) + 600


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: None, id="no-token"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
        pytest.param(
            lambda: mint("another-secret-that-is-long-enough!!", "alice"), id="bad-signature"
        ),
        pytest.param(lambda: unsigned({"sub": "alice", "exp": valid_exp()}), id="alg-none"),
        pytest.param(lambda: signed({"sub": "alice", "exp": valid_exp()}, "HS512"), id="hs512"),
        pytest.param(lambda: signed({"exp": valid_exp()}), id="missing-sub"),
        pytest.param(lambda: signed({"sub": "alice"}), id="missing-exp"),
        pytest.param(lambda: signed(expired_claims()), id="expired"),
    ],
)
async def test_invalid_token_is_closed_4001(auth_server, room_id, make_token):
    assert_closed_with(await refusal(auth_server.ws, room_id, token=make_token()), 4001)


async def test_invalid_token_in_header_is_closed_4001(auth_server, room_id):
    token = signed(expired_claims())
    refused = await refusal(auth_server.ws, room_id, token=token, token_in_header=True)
    assert_closed_with(refused, 4001)


async def test_token_without_the_room_in_rooms_is_closed_4003(auth_server, room_id):
    token = token_for("alice", rooms=["some-other-room"])
    assert_closed_with(await refusal(auth_server.ws, room_id, token=token), 4003)


async def test_refused_token_creates_no_room(auth_server, room_id):
    await refusal(auth_server.ws, room_id)
    async with httpx.AsyncClient(base_url=auth_server.http, timeout=5) as http:
        assert (await http.get(f"/rooms/{room_id}")).status_code == 404


# Takeover by the same sub -----------------------------------------------------------------


async def test_second_connection_of_the_same_sub_takes_over_the_seat(auth_server, room_id):
    token = token_for("alice")
    async with (
        await connect(auth_server.ws, room_id, token=token) as old,
        await connect(auth_server.ws, room_id, token=token) as new,
    ):
        assert await old.wait_closed() == 4010
        assert old.close_reason
        assert new.pid == "alice"
        assert new.welcome["resumed"] is True


async def test_takeover_keeps_the_seats_state_and_host_role(auth_server, room_id):
    token = token_for("alice")
    async with await connect(auth_server.ws, room_id, token=token) as old:
        await old.send_input({"x": 1})
        await state_until(old, lambda mirror: mirror.acks.get("alice") == 1)
        async with await connect(auth_server.ws, room_id, token=token, initial_seq=1) as new:
            snap = await new.wait_for("snap")
            assert snap["s"]["players"]["alice"] == {"x": 1}
            assert snap["acks"]["alice"] == 1
            assert new.welcome["host"] == "alice"


async def test_other_members_see_no_presence_change_on_takeover(auth_server, room_id):
    token = token_for("alice")
    async with (
        await connect(auth_server.ws, room_id, token=token_for("bob")) as bob,
        await connect(auth_server.ws, room_id, token=token) as old,
    ):
        await bob.wait_for("join", where=lambda m: m["pid"] == "alice")
        async with await connect(auth_server.ws, room_id, token=token) as new:
            assert await old.wait_closed() == 4010
            await new.send_event("after-takeover")  # reliable and ordered: a marker
            before = []
            while (message := await bob.recv())["t"] != "event":
                before.append(message)
            assert message["d"] == "after-takeover"
            assert [m for m in before if m["t"] in PRESENCE | {"host"}] == []


async def test_takeover_works_in_a_full_room(auth_server, room_id):
    await create_room(auth_server, room_id, max_players=1)
    token = token_for("alice")
    async with (
        await connect(auth_server.ws, room_id, token=token) as old,
        await connect(auth_server.ws, room_id, token=token) as new,
    ):
        assert new.welcome["resumed"] is True
        assert await old.wait_closed() == 4010


# Refusal order around auth ----------------------------------------------------------------


async def test_bad_room_id_is_4000_before_a_bad_token(auth_server):
    assert_closed_with(await refusal(auth_server.ws, "bad.id", token="garbage"), 4000)


async def test_bad_spectate_value_is_4000_before_a_missing_token(auth_server, room_id):
    assert_closed_with(await refusal(f"{auth_server.ws}?spectate=2", room_id), 4000)


async def test_bad_token_is_4001_before_a_bad_resume_token(auth_server, room_id):
    refused = await refusal(auth_server.ws, room_id, token="garbage", resume="not-a-token")
    assert_closed_with(refused, 4001)


async def test_valid_token_with_a_bad_resume_token_is_4012(auth_server, room_id):
    refused = await refusal(auth_server.ws, room_id, token=token_for("alice"), resume="nope")
    assert_closed_with(refused, 4012)


async def test_resume_with_another_subs_token_is_4001(auth_server, room_id):
    async with await connect(auth_server.ws, room_id, token=token_for("alice")) as alice:
        resume = alice.resume_token
        refused = await refusal(auth_server.ws, room_id, token=token_for("mallory"), resume=resume)
        assert_closed_with(refused, 4001)


async def test_full_room_with_a_valid_token_is_4009(auth_server, room_id):
    await create_room(auth_server, room_id, max_players=1)
    async with await connect(auth_server.ws, room_id, token=token_for("alice")):
        refused = await refusal(auth_server.ws, room_id, token=token_for("bob"))
        assert_closed_with(refused, 4009)


async def test_full_room_with_a_bad_token_is_4001(auth_server, room_id):
    await create_room(auth_server, room_id, max_players=1)
    async with await connect(auth_server.ws, room_id, token=token_for("alice")):
        assert_closed_with(await refusal(auth_server.ws, room_id, token="garbage"), 4001)
