"""The cluster's room directory in Redis: what any worker needs to list, describe and
matchmake rooms owned by others.

Each owner writes its rooms' descriptions (``tr:dir``, a hash by room id), the public ids
in order (``tr:ids``, a sorted set read by lexical range for ``GET /rooms`` pages) and, per
logic, the public rooms with a free seat (``tr:open:{logic}``, what matchmaking reads
instead of every room). Writes are collected and sent once per loop turn in one pipeline.
A description keeps the wall-clock time of the room's tick 0, so any worker tells the
room's current tick without asking its owner.

Every write runs a script that checks the room's owner and epoch first, as checkpoints
do: a former owner that has not yet noticed its demotion (a paused worker, or a room
still closing its members after it) can neither overwrite its successor's entry, nor
list the room as open when it is full, nor unlist it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from tickrelay.server.cluster.lease import ROOM_PREFIX, fenced

if TYPE_CHECKING:
    from tickrelay.server.room import Room

log = logging.getLogger("tickrelay.cluster")

DESCRIPTIONS = "tr:dir"
PUBLIC_IDS = "tr:ids"
OPEN_PREFIX = "tr:open:"

# ARGV: owner, epoch, room id, entry, listing ('' private, 'open' with a free seat, 'full')
_FENCED_PUT = fenced("""
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if ARGV[5] == '' then return 1 end
redis.call('ZADD', KEYS[3], 0, ARGV[3])
if ARGV[5] == 'open' then
  redis.call('SADD', KEYS[4], ARGV[3])
else
  redis.call('SREM', KEYS[4], ARGV[3])
end
return 1
""")

# Ours to delete: under our epoch, also after our own release (the room is deleted and its
# lease given back in the same turn, which may reach Redis first); or our own entry for a
# room nobody owns any more (another worker claimed and released it in between, without
# ever listing it), which nobody else would remove.
_FENCED_DELETE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
local ours = redis.call('HGET', KEYS[1], 'epoch') == ARGV[2]
if owner then
  if owner ~= ARGV[1] or not ours then return 0 end
elseif not ours then
  local entry = redis.call('HGET', KEYS[2], ARGV[3])
  if not entry or cjson.decode(entry)['owner'] ~= ARGV[1] then return 0 end
end
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('SREM', KEYS[4], ARGV[3])
return 1
"""


def entry_of(room: Room, owner: str) -> dict[str, Any]:
    """A room's directory entry: its description without the moving tick, plus tick 0's
    wall-clock time and the owner."""
    entry = room.describe()
    entry["t0_ms"] = (time.time() - room.ticks.elapsed) * 1000.0
    entry["owner"] = owner
    del entry["tick"]
    return entry


def described(entry: dict[str, Any]) -> dict[str, Any]:
    """The description a client sees (``GET /rooms``), its tick computed from tick 0."""
    elapsed = max(time.time() * 1000.0 - entry["t0_ms"], 0.0) / 1000.0
    out = {k: v for k, v in entry.items() if k not in ("t0_ms", "owner")}
    out["tick"] = int(elapsed * entry["tick_rate"])
    return out


class Directory:
    """Reads and fenced, batched writes of the room directory for one worker."""

    def __init__(self, client: Any, worker_id: str, epochs: dict[str, int]) -> None:
        self._client = client
        self._worker_id = worker_id
        self._epochs = epochs  # the node's: the rooms this worker owns, and under which epoch
        self._dirty: dict[str, tuple[Room, int, bool]] = {}  # id -> (room, epoch, still there)
        self._flushing: asyncio.Task[None] | None = None
        self._scheduled = False
        self.refused = 0  # writes fenced off: the room was no longer ours

    # Writes (by the owner) ---------------------------------------------------------------

    def changed(self, room: Room) -> None:
        """Rewrite the room's entry, if this worker owns it (a room closing after its
        demotion still reports seat changes: they are not ours to publish)."""
        epoch = self._epochs.get(room.id)
        if epoch is not None:
            self._mark(room, epoch, True)

    def removed(self, room: Room, epoch: int) -> None:
        """Unlist the room, under the epoch the caller owned it by: by now this worker has
        let the room go, and ``changed`` would find no epoch for it."""
        self._mark(room, epoch, False)

    def _mark(self, room: Room, epoch: int, there: bool) -> None:
        self._dirty[room.id] = (room, epoch, there)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._flushing is not None or not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        self._flushing = asyncio.get_running_loop().create_task(
            self._write(dirty), name="cluster-directory"
        )

    async def _write(self, dirty: dict[str, tuple[Room, int, bool]]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for room, epoch, there in dirty.values():
                    if there:
                        self._put(pipe, room, epoch)
                    else:
                        self._delete(pipe, room, epoch)
                results = await pipe.execute()
            self.refused += results.count(0)
        except (RedisError, OSError) as exc:
            # Live rooms are rewritten every refresh; a deleted one only by a retry, which
            # waits for the next refresh (``retry``) rather than spin while Redis is away.
            for room_id, (room, epoch, there) in dirty.items():
                if not there:
                    self._dirty.setdefault(room_id, (room, epoch, there))
            log.debug("directory write failed (retried at the next refresh): %s", exc)
            return
        finally:
            self._flushing = None
        self.retry()

    def retry(self) -> None:
        """Write what is still pending: marks made during a write, or after a failed one
        (the node's refresh). Writes go as EVAL: see ``lease.fenced``."""
        if self._dirty and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _keys(self, room: Room) -> list[str]:
        return [ROOM_PREFIX + room.id, DESCRIPTIONS, PUBLIC_IDS, OPEN_PREFIX + room.options.logic]

    def _put(self, pipe: Any, room: Room, epoch: int) -> None:
        entry = json.dumps(entry_of(room, self._worker_id), separators=(",", ":"))
        listing = ""
        if not room.options.private:
            listing = "open" if room.seated < room.options.max_players else "full"
        args = [self._worker_id, epoch, room.id, entry, listing]
        pipe.eval(_FENCED_PUT, 4, *self._keys(room), *args)

    def _delete(self, pipe: Any, room: Room, epoch: int) -> None:
        pipe.eval(_FENCED_DELETE, 4, *self._keys(room), self._worker_id, epoch, room.id)

    async def close(self) -> None:
        task = self._flushing
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 1.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

    # Reads (by anyone) -------------------------------------------------------------------

    async def describe(self, room_id: str) -> dict[str, Any] | None:
        raw = await self._client.hget(DESCRIPTIONS, room_id)
        return json.loads(raw) if raw is not None else None

    async def page(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        start = f"({after}" if after is not None else "-"
        ids = await self._client.zrangebylex(PUBLIC_IDS, start, "+", start=0, num=limit)
        return await self._entries(ids)

    async def open_rooms(self, logic: str) -> list[dict[str, Any]]:
        ids = await self._client.smembers(OPEN_PREFIX + logic)
        return await self._entries(sorted(ids))

    async def _entries(self, ids: list[Any]) -> list[dict[str, Any]]:
        if not ids:
            return []
        raws = await self._client.hmget(DESCRIPTIONS, ids)
        return [json.loads(raw) for raw in raws if raw is not None]
