"""The tests' own redis-server processes (see ``tickrelay.loadtest.redisproc``)."""

from tickrelay.loadtest.redisproc import (
    ENV_VAR,
    HOW_TO_INSTALL,
    RedisNotFound,
    RedisServer,
    find_redis_server,
    free_port,
)

__all__ = ["ENV_VAR", "HOW_TO_INSTALL", "RedisNotFound", "RedisServer", "find_redis_server",
           "free_port"]  # fmt: skip
