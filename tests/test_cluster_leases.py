"""Worker leases and room ownership with a fencing epoch, on a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tests.redis_support import RedisServer
from tickrelay.server.cluster.lease import Leases, Renewal

TTL = 0.3


@pytest.fixture
def one(redis_client: aioredis.Redis) -> Leases:
    return Leases(redis_client, "w1", "boot-1")


@pytest.fixture
def two(redis_client: aioredis.Redis) -> Leases:
    return Leases(redis_client, "w2", "boot-2")


async def test_a_new_lease_is_created_then_renewed(one: Leases) -> None:
    assert await one.renew(TTL) is Renewal.LAPSED  # nothing to renew at the first start
    assert await one.renew(TTL) is Renewal.RENEWED


async def test_a_lease_that_expired_reports_lapsed(one: Leases) -> None:
    await one.renew(TTL)
    await asyncio.sleep(TTL + 0.2)
    assert await one.renew(TTL) is Renewal.LAPSED


async def test_another_boot_with_the_same_worker_id_conflicts(
    one: Leases, redis_client: aioredis.Redis
) -> None:
    await one.renew(5)
    impostor = Leases(redis_client, "w1", "boot-2")
    assert await impostor.renew(5) is Renewal.CONFLICT


async def test_the_first_claim_owns_the_room_under_epoch_1(one: Leases) -> None:
    await one.renew(5)
    claim = await one.claim("r")
    assert claim.won_by("w1")
    assert claim.epoch == 1


async def test_claiming_a_room_you_own_keeps_the_epoch(one: Leases) -> None:
    await one.renew(5)
    await one.claim("r")
    assert (await one.claim("r")).epoch == 1


async def test_a_live_owner_keeps_its_room(one: Leases, two: Leases) -> None:
    await one.renew(5)
    await two.renew(5)
    await one.claim("r")
    claim = await two.claim("r")
    assert not claim.won_by("w2")
    assert claim.owner == "w1"


async def test_a_room_whose_owner_lease_lapsed_is_taken_over_with_a_higher_epoch(
    one: Leases, two: Leases
) -> None:
    await one.renew(TTL)
    await two.renew(5)
    await one.claim("r")
    await asyncio.sleep(TTL + 0.2)
    claim = await two.claim("r")
    assert claim.won_by("w2")
    assert claim.epoch == 2


async def test_a_deposed_owner_cannot_write_under_its_old_epoch(
    one: Leases, two: Leases, redis_client: aioredis.Redis
) -> None:
    await one.renew(TTL)
    await two.renew(5)
    old = await one.claim("r")
    await asyncio.sleep(TTL + 0.2)
    new = await two.claim("r")
    await one.renew(TTL)  # it comes back from its pause...
    assert not await one.fenced_set("r", old.epoch, "tr:ckpt:r", b"stale")  # ...and is fenced
    assert await two.fenced_set("r", new.epoch, "tr:ckpt:r", b"fresh")
    assert await redis_client.get("tr:ckpt:r") == b"fresh"


async def test_a_released_room_is_claimed_at_once_without_waiting_for_the_lease(
    one: Leases, two: Leases
) -> None:
    await one.renew(5)
    await two.renew(5)
    claim = await one.claim("r")
    assert await one.release("r", claim.epoch)
    taken = await two.claim("r")
    assert taken.won_by("w2")
    assert taken.epoch == 2


async def test_only_the_owner_under_its_epoch_can_release(one: Leases, two: Leases) -> None:
    await one.renew(5)
    await two.renew(5)
    claim = await one.claim("r")
    assert not await two.release("r", claim.epoch)
    assert not await one.release("r", claim.epoch + 1)
    assert not (await two.claim("r")).won_by("w2")


async def test_after_redis_lost_everything_the_owner_reasserts_its_epoch(
    one: Leases, two: Leases, redis_server: RedisServer
) -> None:
    await one.renew(5)
    owned = await one.claim("r")
    redis_server.restart()  # no persistence: every key is gone
    for _ in range(50):
        try:
            assert await one.reassert("r", owned.epoch)
            break
        except aioredis.ConnectionError:
            await asyncio.sleep(0.05)
    await one.renew(5)
    await two.renew(5)
    claim = await two.claim("r")
    assert claim.owner == "w1"  # the reasserted owner keeps it
    assert (await one.claim("r")).epoch == owned.epoch


async def test_reasserting_does_not_steal_a_room_claimed_by_someone_else(
    one: Leases, two: Leases
) -> None:
    await two.renew(5)
    await two.claim("r")
    assert not await one.reassert("r", 1)
