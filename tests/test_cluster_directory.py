"""The room directory's writes are fenced by the room's epoch, on a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tests.redis_support import RedisServer
from tests.room_core_fakes import make_room
from tickrelay.server.cluster.directory import Directory
from tickrelay.server.cluster.lease import Leases
from tickrelay.server.room import Room

TTL = 0.3


@pytest.fixture
def room() -> Room:
    return make_room().room


class Worker:
    """One worker's lease and directory, and the epochs it believes it owns rooms under."""

    def __init__(self, client: aioredis.Redis, worker_id: str) -> None:
        self.leases = Leases(client, worker_id, f"boot-{worker_id}")
        self.epochs: dict[str, int] = {}
        self.directory = Directory(client, worker_id, self.epochs)

    async def own(self, room: Room, ttl: float = 5.0) -> int:
        await self.leases.renew(ttl)
        claim = await self.leases.claim(room.id)
        assert claim.won
        self.epochs[room.id] = claim.epoch
        return claim.epoch

    async def written(self) -> None:
        """Let the pipeline scheduled for this loop turn reach Redis."""
        await asyncio.sleep(0)
        await self.directory.close()

    async def changed(self, room: Room) -> None:
        """``Directory.changed``, written through to Redis."""
        self.directory.changed(room)
        await self.written()

    async def removed(self, room: Room, epoch: int) -> None:
        """``Directory.removed``, written through to Redis."""
        self.directory.removed(room, epoch)
        await self.written()


async def deposed(one: Worker, two: Worker, room: Room) -> int:
    """``one`` owned the room under the epoch returned until its lease lapsed (a pause);
    ``two`` took the room over and listed it."""
    old = await one.own(room, ttl=TTL)
    await asyncio.sleep(TTL + 0.2)
    await two.own(room)
    await two.changed(room)
    return old


@pytest.fixture
def one(redis_client: aioredis.Redis) -> Worker:
    return Worker(redis_client, "w1")


@pytest.fixture
def two(redis_client: aioredis.Redis) -> Worker:
    return Worker(redis_client, "w2")


async def test_the_owner_lists_its_room(one: Worker, room: Room) -> None:
    await one.own(room)
    await one.changed(room)
    assert (await one.directory.describe(room.id) or {})["owner"] == "w1"
    assert [entry["id"] for entry in await one.directory.page(None, 10)] == [room.id]
    assert [entry["id"] for entry in await one.directory.open_rooms("relay")] == [room.id]


async def test_a_room_this_worker_does_not_own_is_not_written(one: Worker, room: Room) -> None:
    await one.changed(room)
    assert await one.directory.describe(room.id) is None
    assert one.directory.refused == 0  # not refused by Redis: never sent


async def test_a_deposed_owner_cannot_overwrite_its_successors_entry(
    one: Worker, two: Worker, room: Room
) -> None:
    await deposed(one, two, room)
    await one.leases.renew(TTL)  # it comes back from its pause, still holding epoch 1...
    await one.changed(room)
    assert (await two.directory.describe(room.id) or {})["owner"] == "w2"  # ...and is fenced
    assert one.directory.refused == 1


async def test_a_deposed_owner_cannot_unlist_its_successors_room(
    one: Worker, two: Worker, room: Room
) -> None:
    old = await deposed(one, two, room)
    await one.removed(room, old)
    assert one.directory.refused == 1
    assert [entry["id"] for entry in await two.directory.open_rooms("relay")] == [room.id]
    assert await two.directory.describe(room.id) is not None


async def test_a_room_deleted_after_its_release_is_unlisted(one: Worker, room: Room) -> None:
    epoch = await one.own(room)
    await one.changed(room)
    assert await one.leases.release(room.id, epoch)  # the lease went back first
    await one.removed(room, epoch)
    assert await one.directory.describe(room.id) is None
    assert await one.directory.page(None, 10) == []
    assert await one.directory.open_rooms("relay") == []


async def test_a_flush_is_one_round_trip_without_asking_for_loaded_scripts(
    one: Worker, room: Room, redis_client: aioredis.Redis
) -> None:
    await one.own(room)
    await redis_client.config_resetstat()
    await one.changed(room)
    calls = await redis_client.info("commandstats")
    assert calls["cmdstat_eval"]["calls"] == 1
    assert not any(name.startswith("cmdstat_script") for name in calls)


async def test_a_release_then_a_newer_claim_fences_off_the_old_owners_delete(
    one: Worker, two: Worker, room: Room
) -> None:
    old = await one.own(room)
    assert await one.leases.release(room.id, old)
    await two.own(room)
    await two.changed(room)
    await one.removed(room, old)
    assert one.directory.refused == 1
    assert (await two.directory.describe(room.id) or {})["owner"] == "w2"


async def test_our_entry_for_a_room_nobody_owns_any_more_is_deleted(
    one: Worker, two: Worker, room: Room
) -> None:
    old = await one.own(room)
    await one.changed(room)
    assert await one.leases.release(room.id, old)
    assert await two.leases.release(room.id, await two.own(room))  # never listed it
    await one.removed(room, old)
    assert await one.directory.describe(room.id) is None


async def test_a_delete_that_failed_is_retried_at_the_next_refresh(
    redis_client: aioredis.Redis, redis_server: RedisServer, room: Room
) -> None:
    await redis_client.acl_setuser(
        "dir", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"]
    )
    restricted = aioredis.Redis.from_url(redis_server.url, username="dir", password="pw")
    try:
        worker = Worker(restricted, "w1")
        epoch = await worker.own(room)
        await worker.changed(room)
        await redis_client.acl_setuser("dir", commands=["-eval"])  # every write fails now
        await worker.removed(room, epoch)
        assert await redis_client.hexists("tr:dir", room.id)
        await redis_client.acl_setuser("dir", commands=["+eval"])
        worker.directory.retry()  # what the node's refresh calls
        await worker.written()
        assert not await redis_client.hexists("tr:dir", room.id)
    finally:
        await restricted.aclose()
