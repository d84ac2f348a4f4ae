"""Worker leases and room ownership, fenced by an epoch (compare-and-set in Lua).

One lease per worker, renewed often, instead of one per room: a room's owner is valid
while its owner's worker lease exists. Taking a room over bumps the room's epoch; every
write and every message an owner makes for a room carries the epoch it owns it under, and
anything under an older epoch is refused or dropped. A worker that paused past its lease
(a long GC, a stopped VM, a partition) therefore can never act for a room it lost, even
before it notices. redis-py's ``Lock`` has no such counter, hence these scripts.

Keys (one Redis, not Redis Cluster: the claim script reads the owner's lease key by name):
``tr:worker:{id}`` holds the worker's boot token with a TTL; ``tr:room:{id}`` is a hash
with ``owner`` (a worker id) and ``epoch`` (only grows, while Redis keeps its data).

A Redis that restarted empty knows no owner, yet the owners are alive and hold their rooms
in memory. ``tr:up`` marks a Redis the cluster has seen: a claim on a Redis without it is
refused until the first renewal sets it, and a worker with rooms whose lease had vanished
sets ``tr:settling`` for a lease period, during which no claim succeeds. Owners re-assert
their rooms in that time, before anyone may take them over.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

WORKER_PREFIX = "tr:worker:"
ROOM_PREFIX = "tr:room:"
UP = "tr:up"
SETTLING = "tr:settling"
BOOTS = "tr:boots"  # counts the workers' boots: each worker's number sets its tick phase

_RENEW = """
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], '1') end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if v then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[3], '1', 'PX', ARGV[3]) end
return 0
"""

_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then
  return {-1, '', 0}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if owner == ARGV[1] then return {1, owner, epoch} end
if owner and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
  return {0, owner, epoch}
end
epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return {1, ARGV[1], epoch}
"""

_OWNER = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and redis.call('EXISTS', ARGV[1] .. owner) == 1 then
  return {owner, tonumber(redis.call('HGET', KEYS[1], 'epoch'))}
end
return false
"""

_REASSERT = """
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local mine = tonumber(ARGV[2])
if owner == ARGV[1] and epoch == mine then return 1 end
if owner == false and epoch <= mine then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', mine)
  return 1
end
return 0
"""

_FENCE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
   or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then
  return 0
end
"""


def fenced(body: str) -> str:
    """A script that runs ``body`` only while worker ARGV[1] owns the room whose lease is
    KEYS[1] under epoch ARGV[2], and returns 0 otherwise: every write an owner makes for
    a room (checkpoints, directory, release) is fenced by this one check.

    In a pipeline, send it as ``pipe.eval(script, ...)``: a pipeline holding redis-py
    ``Script`` objects asks Redis ``SCRIPT EXISTS`` before every ``execute``, a round
    trip more. Alone, a registered ``Script`` (EVALSHA) costs one round trip."""
    return _FENCE + body


RELEASE = fenced("""
redis.call('HDEL', KEYS[1], 'owner')
return 1
""")

_FENCED_SET = fenced("""
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[2], ARGV[3])
end
return 1
""")


class Renewal(Enum):
    RENEWED = 1  # the lease was ours and is extended
    LAPSED = 0  # it had expired (or Redis lost it): recreated, but our rooms may be gone
    CONFLICT = -1  # another boot holds our worker id: we must stop


class ClaimResult(Enum):
    WON = 1  # ours now (or already), under ``epoch``
    OWNED = 0  # a live worker owns it
    UNSETTLED = -1  # Redis (re)started moments ago: owners are re-asserting, try again


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to a claim: ``owner`` owns the room under ``epoch`` (we, if ``won``)."""

    result: ClaimResult
    owner: str
    epoch: int

    @property
    def won(self) -> bool:
        return self.result is ClaimResult.WON

    @property
    def unsettled(self) -> bool:
        return self.result is ClaimResult.UNSETTLED

    def won_by(self, worker_id: str) -> bool:
        return self.won and self.owner == worker_id


class Leases:
    """The scripts above bound to one redis.asyncio client, for one worker."""

    def __init__(self, client: Any, worker_id: str, token: str) -> None:
        self.worker_id = worker_id
        self._token = token
        self._renew = client.register_script(_RENEW)
        self._client = client
        self._claim = client.register_script(_CLAIM)
        self._owner = client.register_script(_OWNER)
        self._reassert = client.register_script(_REASSERT)
        self._release = client.register_script(RELEASE)
        self._fenced_set = client.register_script(_FENCED_SET)

    async def renew(self, ttl: float, settle: float = 0.0) -> Renewal:
        """Extend our lease. ``settle`` > 0 (we hold rooms): if the lease had vanished,
        hold every claim off for that long, so we re-assert our rooms first."""
        keys = [WORKER_PREFIX + self.worker_id, UP, SETTLING]
        args = [self._token, _ms(ttl), _ms(settle)]
        return Renewal(int(await self._renew(keys=keys, args=args)))

    async def boot_number(self) -> int:
        """A number no other boot of a worker got from this Redis (a counter)."""
        return int(await self._client.incr(BOOTS))

    async def claim(self, room_id: str) -> Claim:
        """Own the room if nobody live does (a new epoch), or learn who does."""
        result, owner, epoch = await self._claim(
            keys=[ROOM_PREFIX + room_id, UP, SETTLING], args=[self.worker_id, WORKER_PREFIX]
        )
        return Claim(ClaimResult(int(result)), _text(owner), int(epoch))

    async def owner(self, room_id: str) -> tuple[str, int] | None:
        """The live owner of a room and its epoch, without claiming it; None if nobody."""
        found = await self._owner(keys=[ROOM_PREFIX + room_id], args=[WORKER_PREFIX])
        return (_text(found[0]), int(found[1])) if found else None

    async def alive(self, worker_ids: list[str]) -> set[str]:
        """Which of these workers hold a lease now (one round trip)."""
        if not worker_ids:
            return set()
        values = await self._client.mget([WORKER_PREFIX + w for w in worker_ids])
        return {w for w, value in zip(worker_ids, values, strict=True) if value is not None}

    async def reassert(self, room_id: str, epoch: int) -> bool:
        """After Redis lost its data: put back our ownership, unless someone else claimed."""
        keys = [ROOM_PREFIX + room_id]
        return bool(await self._reassert(keys=keys, args=[self.worker_id, epoch]))

    async def release(self, room_id: str, epoch: int) -> bool:
        """Hand the room over at once (a drain): the next claim needs no lease to lapse."""
        keys = [ROOM_PREFIX + room_id]
        return bool(await self._release(keys=keys, args=[self.worker_id, epoch]))

    async def fenced_set(
        self, room_id: str, epoch: int, key: str, value: bytes, ttl: float = 0.0
    ) -> bool:
        """Write ``key`` only while we own the room under ``epoch`` (checkpoints)."""
        keys = [ROOM_PREFIX + room_id, key]
        args = [self.worker_id, epoch, value, _ms(ttl)]
        return bool(await self._fenced_set(keys=keys, args=args))


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
