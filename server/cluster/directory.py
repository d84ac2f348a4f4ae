"""The cluster's room directory in Redis: what any worker needs to list, describe and
matchmake rooms owned by others.

Each owner writes its rooms' descriptions (``tr:dir``, a hash by room id), the public ids
in order (``tr:ids``, a sorted set read by lexical range for ``GET /rooms`` pages) and, per
logic, the public rooms with a free seat (``tr:open:{logic}``, what matchmaking reads
instead of every room). Writes are collected and sent once per loop turn in one pipeline.
A description keeps the wall-clock time of the room's tick 0, so any worker tells the
room's current tick without asking its owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from tickrelay.server.room import Room

log = logging.getLogger("tickrelay.cluster")

DESCRIPTIONS = "tr:dir"
PUBLIC_IDS = "tr:ids"
OPEN_PREFIX = "tr:open:"


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
    """Reads and batched writes of the room directory for one worker."""

    def __init__(self, client: Any, worker_id: str) -> None:
        self._client = client
        self._worker_id = worker_id
        self._dirty: dict[str, tuple[Room, bool]] = {}  # id -> (room, still there)
        self._flushing: asyncio.Task[None] | None = None
        self._scheduled = False

    # Writes (by the owner) ---------------------------------------------------------------

    def changed(self, room: Room) -> None:
        self._mark(room, True)

    def removed(self, room: Room) -> None:
        self._mark(room, False)

    def _mark(self, room: Room, there: bool) -> None:
        self._dirty[room.id] = (room, there)
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

    async def _write(self, dirty: dict[str, tuple[Room, bool]]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for room, there in dirty.values():
                    if there:
                        self._put(pipe, room)
                    else:
                        self._delete(pipe, room)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.debug("directory write failed (rewritten on the next refresh): %s", exc)
        finally:
            self._flushing = None
        if self._dirty and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _put(self, pipe: Any, room: Room) -> None:
        entry = entry_of(room, self._worker_id)
        pipe.hset(DESCRIPTIONS, room.id, json.dumps(entry, separators=(",", ":")))
        if room.options.private:
            return
        pipe.zadd(PUBLIC_IDS, {room.id: 0})
        open_set = OPEN_PREFIX + room.options.logic
        if room.seated < room.options.max_players:
            pipe.sadd(open_set, room.id)
        else:
            pipe.srem(open_set, room.id)

    def _delete(self, pipe: Any, room: Room) -> None:
        pipe.hdel(DESCRIPTIONS, room.id)
        pipe.zrem(PUBLIC_IDS, room.id)
        pipe.srem(OPEN_PREFIX + room.options.logic, room.id)

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
