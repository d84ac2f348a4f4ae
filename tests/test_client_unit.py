"""Sans-socket unit tests of the client's pure helpers: the join URL and the backoff."""

from __future__ import annotations

import random
import urllib.parse

import pytest

from tickrelay.client.urls import backoff_delays, build_url


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
