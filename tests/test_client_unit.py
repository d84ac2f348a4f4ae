"""Unit tests of the client's parts, without sockets where possible: the join URL, the
backoff, the option definition and the session state machine."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import free_port
from tickrelay.client import ClientClosed, ClientOptions, RoomClient, SessionState, connect
from tickrelay.client.session import Session
from tickrelay.client.urls import backoff_delays, build_url

OPTION_NAMES = [field.name for field in dataclasses.fields(ClientOptions)]
CLIENT_README = Path(__file__).resolve().parent.parent / "client" / "README.md"


def _query(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)


def test_url_has_room_path() -> None:
    assert build_url("ws://127.0.0.1:8000", "lobby") == "ws://127.0.0.1:8000/ws/rooms/lobby"


def test_url_without_options_has_no_query() -> None:
    assert urllib.parse.urlsplit(build_url("ws://h:1", "r")).query == ""


def test_url_trailing_slash_of_base_is_not_doubled() -> None:
    assert build_url("ws://h:1/", "r") == "ws://h:1/ws/rooms/r"


def test_url_percent_encodes_slash_in_room_id() -> None:
    assert urllib.parse.urlsplit(build_url("ws://h", "a/b")).path == "/ws/rooms/a%2Fb"


def test_url_percent_encodes_non_ascii_room_id() -> None:
    assert urllib.parse.urlsplit(build_url("ws://h", "é")).path == "/ws/rooms/%C3%A9"


def test_url_percent_encodes_percent_in_room_id() -> None:
    assert urllib.parse.urlsplit(build_url("ws://h", "%2F")).path == "/ws/rooms/%252F"


def test_url_keeps_base_path_prefix() -> None:
    assert urllib.parse.urlsplit(build_url("ws://h/game/", "r")).path == "/game/ws/rooms/r"


def test_url_maps_http_to_ws() -> None:
    assert build_url("http://h:8000", "r").startswith("ws://h:8000/")


def test_url_maps_https_to_wss() -> None:
    assert build_url("https://h", "r").startswith("wss://h/")


def test_url_rejects_unknown_scheme() -> None:
    with pytest.raises(ValueError):
        build_url("ftp://h", "r")


def test_url_rejects_missing_host() -> None:
    with pytest.raises(ValueError):
        build_url("ws://", "r")


def test_url_carries_token() -> None:
    assert _query(build_url("ws://h", "r", token="a.b.c"))["token"] == ["a.b.c"]


def test_url_carries_resume_token() -> None:
    assert _query(build_url("ws://h", "r", resume="xyz"))["resume"] == ["xyz"]


def test_url_quotes_reserved_characters_in_token() -> None:
    assert _query(build_url("ws://h", "r", token="a+b&c=d"))["token"] == ["a+b&c=d"]


def test_url_spectate_is_one() -> None:
    assert _query(build_url("ws://h", "r", spectate=True))["spectate"] == ["1"]


def test_url_omits_spectate_when_false() -> None:
    assert "spectate" not in _query(build_url("ws://h", "r", token="t", spectate=False))


def test_url_keeps_query_of_base() -> None:
    assert _query(build_url("ws://h/?k=v", "r", token="t")) == {"k": ["v"], "token": ["t"]}


def test_backoff_yields_requested_number_of_delays() -> None:
    assert len(list(backoff_delays(0.1, 5.0, 10))) == 10


def test_backoff_zero_attempts_yields_nothing() -> None:
    assert list(backoff_delays(0.1, 5.0, 0)) == []


def test_backoff_delay_is_within_half_cap_and_cap() -> None:
    caps = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    delays = list(backoff_delays(0.1, 5.0, len(caps), random.Random(1)))
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))


def test_backoff_never_exceeds_maximum() -> None:
    assert max(backoff_delays(1.0, 3.0, 50, random.Random(2))) <= 3.0


def test_backoff_is_jittered() -> None:
    assert len(set(backoff_delays(5.0, 5.0, 20, random.Random(3)))) > 1


def test_backoff_is_deterministic_with_seeded_rng() -> None:
    first = list(backoff_delays(0.1, 5.0, 10, random.Random(4)))
    assert first == list(backoff_delays(0.1, 5.0, 10, random.Random(4)))


def test_backoff_rejects_non_positive_base() -> None:
    with pytest.raises(ValueError):
        list(backoff_delays(0.0, 5.0, 3))


def test_backoff_rejects_maximum_below_base() -> None:
    with pytest.raises(ValueError):
        list(backoff_delays(2.0, 1.0, 3))


# Options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTION_NAMES)
async def test_connect_accepts_every_option(name):
    """Nothing listens on the port, so the join fails with OSError: the option was taken."""
    default = next(f.default for f in dataclasses.fields(ClientOptions) if f.name == name)
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{free_port()}", "r", **{name: default})


async def test_connect_rejects_an_unknown_option_with_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"connect\(\) .*'tokn'"):
        await connect(f"ws://127.0.0.1:{free_port()}", "r", tokn="x")


def test_room_client_rejects_an_unknown_option_with_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"RoomClient\(\) .*'auto_reconect'"):
        RoomClient("ws://h", "r", auto_reconect=True)


def test_room_client_keeps_the_options_given_as_keywords():
    client = RoomClient("ws://h", "r", token="t", spectate=True, initial_seq=7)
    assert client.options == ClientOptions(token="t", spectate=True, initial_seq=7)
    assert (client.seq, client.spectator) == (7, True)


def test_keywords_override_a_shared_options_object():
    shared = ClientOptions(token="t", codec="json")
    client = RoomClient("ws://h", "r", shared, codec="msgpack")
    assert client.options == ClientOptions(token="t", codec="msgpack")


def test_options_refuse_an_unknown_codec():
    with pytest.raises(ValueError, match="codec"):
        ClientOptions(codec="xml")  # type: ignore[arg-type]


def test_options_refuse_a_backoff_maximum_below_its_base():
    with pytest.raises(ValueError):
        ClientOptions(reconnect_backoff=(2.0, 1.0))


def test_an_empty_subprotocol_list_offers_none():
    assert ClientOptions(subprotocols=[]).offered_subprotocols() is None


def test_the_codec_picks_the_offered_subprotocol():
    assert ClientOptions(codec="json").offered_subprotocols() == ["tickrelay.v1.json"]


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_every_option_is_documented_in_the_client_readme(name):
    assert f"`{name}`" in CLIENT_README.read_text()


def test_client_attributes_forwarded_to_its_parts_are_read_only():
    client = RoomClient("ws://h", "r")
    with pytest.raises(AttributeError, match="pid"):
        client.pid = "someone"  # type: ignore[misc]


# Session state ----------------------------------------------------------------------------


@dataclasses.dataclass
class EndedConnection:
    """What the session reads of a connection that ended."""

    close_code: int | None
    close_reason: str | None


def open_session() -> Session[EndedConnection]:
    session: Session[EndedConnection] = Session()
    session.attach(EndedConnection(None, None))
    return session


def test_a_session_starts_connecting():
    assert Session().state is SessionState.CONNECTING


def test_attaching_a_connection_opens_the_session_and_clears_the_last_close():
    session = open_session()
    session.detach(session.connection)  # type: ignore[arg-type]
    session.move(SessionState.RECONNECTING)
    session.attach(EndedConnection(None, None))
    assert session.state is SessionState.OPEN
    assert (session.close_code, session.close_reason) == (None, None)


def test_detaching_records_how_the_connection_ended():
    session = open_session()
    session.detach(EndedConnection(4011, "slow"))
    assert (session.connection, session.close_code, session.close_reason) == (None, 4011, "slow")
    assert session.close_history == [(4011, "slow")]


def test_a_connection_ended_without_a_close_frame_is_recorded_as_1006():
    session = open_session()
    session.detach(EndedConnection(None, None))
    assert session.close_code == 1006


def test_ending_an_open_session_makes_it_closing():
    session = open_session()
    session.end()
    assert session.state is SessionState.CLOSING


def test_ending_is_idempotent():
    session = open_session()
    session.end()
    session.end()
    session.move(SessionState.CLOSED)
    session.end()
    assert session.state is SessionState.CLOSED


def test_a_closing_session_never_reconnects():
    session = open_session()
    session.end()
    with pytest.raises(RuntimeError, match="CLOSING to RECONNECTING"):
        session.move(SessionState.RECONNECTING)


def test_a_reconnecting_session_may_be_ended():
    session = open_session()
    session.move(SessionState.RECONNECTING)
    session.end()
    assert session.state is SessionState.CLOSING


@pytest.mark.parametrize("to", list(SessionState))
def test_a_closed_session_is_final(to):
    session = open_session()
    session.move(SessionState.CLOSED)
    with pytest.raises(RuntimeError):
        session.move(to)


async def test_waiting_for_a_connection_of_a_closed_session_raises_client_closed():
    session = open_session()
    session.detach(EndedConnection(1000, "bye"))
    session.move(SessionState.CLOSED)
    with pytest.raises(ClientClosed) as closed:
        await session.wait_connection()
    assert (closed.value.code, closed.value.reason) == (1000, "bye")


async def test_waiting_for_a_connection_skips_the_stale_one():
    session = open_session()
    stale = session.connection
    fresh = EndedConnection(None, None)
    waiting = asyncio.create_task(session.wait_connection(stale))
    await asyncio.sleep(0)
    assert not waiting.done()
    session.detach(stale)  # type: ignore[arg-type]
    session.move(SessionState.RECONNECTING)
    session.attach(fresh)
    assert await asyncio.wait_for(waiting, 1) is fresh


def test_client_state_properties_follow_the_session_state():
    client = RoomClient("ws://h", "r")
    assert client.state is SessionState.CONNECTING
    assert (client.connected, client.reconnecting, client.closed) == (False, False, False)


async def test_closing_a_client_that_never_joined_closes_it():
    client = RoomClient("ws://h", "r")
    await client.close()
    assert client.state is SessionState.CLOSED
    assert client.closed


async def test_a_joined_client_is_open_then_closed_after_close(server, room_id):
    client = await connect(server.ws, room_id)
    assert client.state is SessionState.OPEN
    assert client.connected
    await client.close()
    assert client.state is SessionState.CLOSED
    assert (client.connected, client.closed) == (False, True)


async def test_a_client_that_left_is_closed_and_not_connected(server, room_id):
    client = await connect(server.ws, room_id)
    assert await client.leave() == 1000
    assert client.state is SessionState.CLOSED
    assert not client.connected
    await client.close()
