"""Where an owner's checkpoints go: Redis, fenced by the room's epoch, pipelined.

The tick never waits for Redis and never encodes a checkpoint: a roster change only marks
its room, and the writes of one loop turn go out in one pipeline; states are saved by a
timer once a checkpoint period, for the rooms whose state moved since their last save.
Every write runs a script that checks the room's owner and epoch first, so a former
owner that has not yet noticed its demotion can never overwrite its successor's
checkpoint. Keys expire unless refreshed: a room nobody took over is forgotten.

Key: ``tr:ck:{room id}``, a hash with ``r`` (the roster) and ``s`` (the state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from tickrelay.server.cluster import checkpoint
from tickrelay.server.cluster.lease import RELEASE, ROOM_PREFIX, fenced
from tickrelay.server.cluster.peers import RemoteMemberLink

if TYPE_CHECKING:
    from tickrelay.server.room import Room

log = logging.getLogger("tickrelay.cluster")

PREFIX = "tr:ck:"

_FENCED_WRITE = fenced("""
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 1
""")

_FENCED_DELETE = fenced("""
redis.call('DEL', KEYS[2])
return 1
""")


class Checkpoints:
    """Saves the rooms this worker owns; loads a room's checkpoint for a takeover."""

    def __init__(
        self,
        client: Any,
        worker_id: str,
        rooms: dict[str, Room],
        epochs: dict[str, int],
        interval: float,
        ttl: float,
    ) -> None:
        self._client = client
        self._worker_id = worker_id
        self._rooms = rooms
        self._epochs = epochs
        self.interval = interval
        self._ttl_ms = int(ttl * 1000)
        self._delete = client.register_script(_FENCED_DELETE)  # sent alone: EVALSHA
        self._dirty: set[str] = set()  # rosters to save
        self._state_due: set[str] = set()  # states to save
        self._saved_ticks: dict[str, int] = {}  # room id -> tick of its last saved state
        self._scheduled = False
        self._retry = False
        self._flushing: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.written = 0  # checkpoint parts written
        self.refused = 0  # writes fenced off (we no longer owned the room)
        self.failed = 0  # pipelines that Redis did not take
        self.encode_seconds = 0.0  # spent packing checkpoints (what the worker pays most)

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(
            self._save_states(), name="cluster-checkpoints"
        )

    async def close(self) -> None:
        for task in (self._timer, self._flushing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._timer = self._flushing = None

    # What owners report ------------------------------------------------------------------

    def roster_changed(self, room: Room) -> None:
        """Cheap and synchronous: the write goes out with the others of this loop turn."""
        self._dirty.add(room.id)
        self._kick()

    def _kick(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def everything_changed(self) -> None:
        """Redis lost our checkpoints (a restart): write every room's again."""
        self._saved_ticks.clear()
        for room in self._rooms.values():
            self.roster_changed(room)

    def forget(self, room_id: str) -> None:
        self._dirty.discard(room_id)
        self._state_due.discard(room_id)
        self._saved_ticks.pop(room_id, None)

    # Writes ------------------------------------------------------------------------------

    def _flush(self) -> None:
        """One writer at a time, so an older roster can never land after a newer one."""
        self._scheduled = False
        if self._flushing is not None or not (self._dirty or self._state_due):
            return
        started = time.perf_counter()
        parts = self._collect()
        self.encode_seconds += time.perf_counter() - started
        self._flushing = asyncio.get_running_loop().create_task(
            self._write_parts(parts), name="cluster-checkpoint"
        )
        self._flushing.add_done_callback(self._flushed)

    def _flushed(self, _: asyncio.Task[None]) -> None:
        self._flushing = None
        if self._retry:  # Redis is away: the period timer retries, not every loop turn
            self._retry = False
        elif self._dirty or self._state_due:
            self._kick()

    async def _save_states(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for room_id, room in self._rooms.items():
                if self._saved_ticks.get(room_id) != room.state.last_frame.tick:
                    self._state_due.add(room_id)
            if self._state_due or self._dirty:
                self._kick()

    def _collect(self) -> list[tuple[str, int, list[Any]]]:
        """What to write now: each room's parts, encoded from its current state."""
        parts = []
        for room_id in self._dirty | self._state_due:
            room, epoch = self._rooms.get(room_id), self._epochs.get(room_id)
            if room is not None and epoch is not None:
                roster = room_id in self._dirty
                state = room_id in self._state_due or room_id not in self._saved_ticks
                parts.append((room_id, epoch, self._fields(room, roster, state)))
        self._dirty.clear()
        self._state_due.clear()
        return parts

    async def _write_parts(self, parts: list[tuple[str, int, list[Any]]]) -> None:
        if not parts:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for room_id, epoch, fields in parts:
                    self._fenced_write(pipe, room_id, epoch, fields)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            self.failed += 1
            self._retry = True
            for room_id, _, fields in parts:  # written again by the next period's timer
                self._saved_ticks.pop(room_id, None)
                if "r" in fields:
                    self._dirty.add(room_id)
            log.debug("checkpoint write failed (retried): %s", exc)
            return
        for (room_id, _, fields), ok in zip(parts, results, strict=True):
            if ok:
                self.written += len(fields) // 2
            else:
                self.refused += 1
                self._saved_ticks.pop(room_id, None)

    def _fields(self, room: Room, roster: bool, state: bool) -> list[Any]:
        fields: list[Any] = []
        if roster:
            fields += ["r", checkpoint.pack_roster(room, self._workers_of(room))]
        if state:
            self._saved_ticks[room.id] = room.state.last_frame.tick
            fields += ["s", checkpoint.pack_state(room, self._logic_saved(room))]
        return fields

    def _fenced_write(self, pipe: Any, room_id: str, epoch: int, fields: list[Any]) -> None:
        """Queue the write on ``pipe`` (``execute`` sends it; EVAL: see ``lease.fenced``)."""
        args = [self._worker_id, epoch, self._ttl_ms, *fields]
        pipe.eval(_FENCED_WRITE, 2, ROOM_PREFIX + room_id, PREFIX + room_id, *args)

    def _workers_of(self, room: Room) -> dict[str, str]:
        me = self._worker_id
        return {
            pid: link.peer.worker if isinstance(link, RemoteMemberLink) else me
            for pid, link in room.roster.links.items()
        }

    @staticmethod
    def _logic_saved(room: Room) -> Any:
        try:
            return room.logic.on_save()
        except Exception:
            log.exception("room %s: on_save failed (saved without it)", room.id)
            return None

    # Handover, disposal, refresh ---------------------------------------------------------

    async def hand_over(self, room: Room, epoch: int) -> bool:
        """A drain: the last checkpoint (members here saved as away) and the release, in
        one round trip. True when both went through under our epoch."""
        self.forget(room.id)
        flushing = self._flushing
        if flushing is not None:  # an older write landing after ours would win
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await asyncio.shield(flushing)
        roster = checkpoint.pack_roster(room, self._workers_of(room), leaving=True)
        state = checkpoint.pack_state(room, self._logic_saved(room))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                self._fenced_write(pipe, room.id, epoch, ["r", roster, "s", state])
                pipe.eval(RELEASE, 1, ROOM_PREFIX + room.id, self._worker_id, epoch)
                written, released = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("room %s: could not hand over (it waits for a takeover): %s", room.id, exc)
            return False
        return bool(written) and bool(released)

    async def delete(self, room_id: str, epoch: int) -> None:
        """The room is gone for good (deleted, idle): no takeover may bring it back."""
        self.forget(room_id)
        keys = [ROOM_PREFIX + room_id, PREFIX + room_id]
        with contextlib.suppress(RedisError, OSError):
            await self._delete(keys=keys, args=[self._worker_id, epoch])

    def refresh(self, pipe: Any) -> None:
        """Keep the checkpoints of live rooms from expiring (the directory refresh)."""
        for room_id, epoch in list(self._epochs.items()):
            self._fenced_write(pipe, room_id, epoch, [])

    # Reads -------------------------------------------------------------------------------

    async def exists(self, room_id: str) -> bool:
        return bool(await self._client.hexists(PREFIX + room_id, "r"))

    async def load(self, room_id: str) -> checkpoint.Checkpoint | None:
        """The room's checkpoint, None when there is none (or it cannot be read)."""
        roster, state = await self._client.hmget(PREFIX + room_id, ["r", "s"])
        if roster is None:
            return None
        try:
            return checkpoint.unpack(roster, state)
        except checkpoint.BadCheckpoint as exc:
            log.warning("room %s: unreadable checkpoint ignored: %s", room_id, exc)
            return None
