"""The bus's raw Redis connections against a real redis-server: logging in, publishing
with no replies, and a subscription that notices a Redis that stops answering."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from tests.redis_support import RedisServer
from tickrelay.server.cluster.redislink import Endpoint, PublishLink, SubscribeLink
from tickrelay.server.cluster.resp import RespError


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


class Subscription:
    """A ``SubscribeLink`` running as a task, recording what it reports."""

    def __init__(self, url: str, channels: list[str], **options: float) -> None:
        self.messages: list[bytes] = []
        self.ups = 0
        self.downs: list[BaseException] = []
        endpoint = Endpoint.from_url(url, timeout=options.pop("timeout", 2.0))
        self.link = SubscribeLink(
            endpoint, channels, self.messages.append, self._up, self.downs.append, **options
        )
        self.task: asyncio.Task[None] | None = None

    def _up(self) -> None:
        self.ups += 1

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.link.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self.task


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def published_and_received(url: str, channel: str, payload: bytes) -> list[bytes]:
    subscription = Subscription(url, [channel])
    subscription.start()
    link = PublishLink(Endpoint.from_url(url))
    try:
        await until(lambda: subscription.ups == 1)
        await link.connect()
        assert link.write([(channel, payload)])
        await until(lambda: subscription.messages != [])
        return subscription.messages
    finally:
        link.close()
        await subscription.stop()


async def test_batches_written_reach_the_subscribed_channel(redis_server: RedisServer) -> None:
    assert await published_and_received(redis_server.url, "tr:w:b", b"\x00batch") == [b"\x00batch"]


async def test_the_publishing_connection_gets_no_replies(redis_server: RedisServer) -> None:
    link = PublishLink(Endpoint.from_url(redis_server.url))
    await link.connect()
    connection = link._connection
    assert connection is not None
    before = connection.last_received
    for n in range(20):
        assert link.write([("nobody", b"%d" % n)])
    await asyncio.sleep(0.2)
    assert connection.last_received == before  # not a byte back: no wake-up per publish
    assert link.error_replies == 0
    link.close()


async def test_a_password_in_the_url_logs_both_connections_in(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await admin.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/0"
    assert await published_and_received(url, "c", b"hi") == [b"hi"]


async def test_an_acl_user_in_the_url_logs_in_as_that_user(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await admin.acl_setuser(
        "bus", enabled=True, passwords=["+pw"], channels=["*"], commands=["+@all"]
    )
    url = f"redis://bus:pw@127.0.0.1:{redis_server.port}/0"
    assert await published_and_received(url, "c", b"as-bus") == [b"as-bus"]


async def test_a_wrong_password_is_refused_with_redis_words(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await admin.config_set("requirepass", "right")
    link = PublishLink(Endpoint.from_url(f"redis://:wrong@127.0.0.1:{redis_server.port}/0"))
    with pytest.raises(RespError, match=r"WRONGPASS|invalid"):
        await link.connect()
    assert not link.connected


async def test_publishing_without_a_connection_writes_nothing(redis_server: RedisServer) -> None:
    link = PublishLink(Endpoint.from_url(redis_server.url))
    assert link.write([("c", b"x")]) is False


async def test_a_paused_redis_is_noticed_by_its_pings_and_the_link_comes_back(
    redis_server: RedisServer,
) -> None:
    subscription = Subscription(redis_server.url, ["c"], timeout=0.5, ping_interval=0.1)
    subscription.start()
    assert redis_server.process is not None
    pid = redis_server.process.pid
    try:
        await until(lambda: subscription.ups == 1)
        os.kill(pid, signal.SIGSTOP)
        await until(lambda: subscription.downs != [], timeout=3.0)
        assert "pings" in str(subscription.downs[0])
        os.kill(pid, signal.SIGCONT)
        await until(lambda: subscription.ups == 2, timeout=5.0)
    finally:
        os.kill(pid, signal.SIGCONT)
        await subscription.stop()


async def test_a_redis_that_refuses_us_is_an_error_at_connect_not_silence(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await admin.config_set("requirepass", "needed")
    link = PublishLink(Endpoint.from_url(redis_server.url))  # no password in the URL
    with pytest.raises(RespError, match="NOAUTH"):
        await link.connect()
    assert link.write([("c", b"x")]) is False


async def test_a_refused_subscription_backs_off(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await admin.config_set("requirepass", "needed")
    subscription = Subscription(redis_server.url, ["c"])
    subscription.start()
    await asyncio.sleep(1.5)
    await subscription.stop()
    assert 2 <= len(subscription.downs) <= 8  # 0.05, 0.1, 0.2, 0.5, 1 s: not 40 tries
    assert subscription.ups == 0


async def test_a_stalled_loop_is_not_taken_for_a_dead_redis(redis_server: RedisServer) -> None:
    subscription = Subscription(redis_server.url, ["c"], timeout=0.5, ping_interval=0.1)
    subscription.start()
    try:
        await until(lambda: subscription.ups == 1)
        time.sleep(1.0)  # the whole loop blocks, pings included
        await asyncio.sleep(0.5)
        assert subscription.downs == []
    finally:
        await subscription.stop()


async def test_a_closed_link_does_not_connect_again(redis_server: RedisServer) -> None:
    link = PublishLink(Endpoint.from_url(redis_server.url))
    link.close()
    with pytest.raises(ConnectionError):
        await link.connect()
    assert not link.connected
