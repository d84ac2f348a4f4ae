"""The rooms of this worker: create on demand or by the API, find, dispose when idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from tickrelay.protocol import CloseCode
from tickrelay.server.backplane import Backplane
from tickrelay.server.clock import Clock, LoopClock
from tickrelay.server.links import MemberLink, RoomLink
from tickrelay.server.members import Member
from tickrelay.server.metrics import Metrics
from tickrelay.server.refusal import JoinRefusal
from tickrelay.server.room import Room
from tickrelay.server.room_options import RoomLimits, RoomOptions
from tickrelay.server.roomindex import MatchIndex, RoomIds
from tickrelay.server.roomquota import RoomQuota
from tickrelay.server.settings import Settings
from tickrelay.server.tick import Phase
from tickrelay.server.tokens import ResumeTokens

log = logging.getLogger("tickrelay.registry")


class RoomExists(Exception):
    """A room with that id already exists (HTTP 409)."""


class OwnerSilent(Exception):
    """The worker that owns the room did not answer an operator request in time (504)."""


class RoomFailed(JoinRefusal):
    """The room's logic failed in ``on_create``; the room was not kept (a join gets 1011)."""

    def __init__(self, reason: str) -> None:
        super().__init__(CloseCode.INTERNAL, reason)


class RoomRegistry:
    """Owns every room and the tasks that dispose of them."""

    #: Where in the period this worker's rooms tick (``tick.Phase``) in a cluster; None in
    #: one process, whose rooms tick from their own creation.
    tick_phase: Phase | None = None

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        backplane: Backplane,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or LoopClock()
        self.metrics = metrics
        self.backplane = backplane
        self.rooms: dict[str, Room] = {}
        self.tokens = ResumeTokens()
        self.limits = RoomLimits(
            resume_grace=settings.resume_grace,
            idle_timeout=settings.idle_timeout,
            gap_messages=settings.reliable_queue_messages,
            gap_bytes=settings.reliable_queue_bytes,
            max_player_bytes=settings.max_player_state,
            max_room_bytes=settings.max_room_state,
        )
        self.match_index = MatchIndex()
        self.public_ids = RoomIds()
        self.quota = RoomQuota(
            settings.max_rooms, settings.room_create_rate, settings.room_create_burst
        )
        self._disposals: set[asyncio.Task[None]] = set()

    def default_options(self, **overrides: Any) -> RoomOptions:
        values: dict[str, Any] = {
            "tick_rate": self.settings.tick_rate,
            "max_players": self.settings.max_players,
            "max_spectators": self.settings.max_spectators,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return RoomOptions(**values)

    def get(self, room_id: str) -> Room | None:
        return self.rooms.get(room_id)

    @property
    def healthy(self) -> bool:
        """False while the rooms shared with other workers cannot be reached (not ready)."""
        return self.backplane.healthy

    def cluster_stats(self) -> dict[str, Any] | None:
        """What this worker exchanges with others (None: one process, nothing shared)."""
        return None

    # What the endpoint and the HTTP API ask. Async, and answered in descriptions rather
    # than Room objects, so that a registry shared between workers can ask the cluster.

    async def join(
        self,
        room: RoomLink,
        link: MemberLink,
        pid: str | None,
        spectator: bool,
        resume_token: str | None,
        spectate_only: bool,
    ) -> tuple[RoomLink, Member]:
        """Take a place in the room ``locate`` gave (see ``Room.join`` for the refusals):
        the room the place is in (a shared room may have moved meanwhile) and the place."""
        assert isinstance(room, Room)
        return room, room.join(link, pid, spectator, resume_token, spectate_only)

    async def open(
        self, room_id: str | None, options: RoomOptions, creator: str | None
    ) -> dict[str, Any]:
        """``POST /rooms``: a new room's description; RoomExists, CreationRefused or
        RoomFailed when it cannot be made."""
        return self.create(room_id, options, creator).describe()

    async def describe(self, room_id: str) -> dict[str, Any] | None:
        room = self.rooms.get(room_id)
        return room.describe() if room is not None else None

    async def listing(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` public rooms' descriptions in id order, after the id ``after``."""
        return [room.describe() for room in self.public_page(after, limit)]

    async def find_match(self, logic: str, meta: dict[str, Any], creator: str | None) -> str:
        """``POST /matchmake``: the id of the room to join."""
        return self.matchmake(logic, meta, creator).id

    async def delete(self, room_id: str) -> bool:
        """``DELETE /rooms/{id}``: dispose the room (members get 4004); False if none."""
        return await self.dispose(room_id, CloseCode.NO_ROOM)

    async def kick(self, room_id: str, pid: str) -> bool | None:
        """True when kicked, False when no such player, None when no such room."""
        room = self.rooms.get(room_id)
        return None if room is None else room.kick(pid)

    async def locate(self, room_id: str, create: bool, creator: str | None = None) -> Room | None:
        """The room a join goes to: this worker's, or a new one when ``create`` (None when
        neither), charged to the ``creator`` address. Async so that a registry shared
        between workers can ask the cluster."""
        room = self.rooms.get(room_id)
        if room is None and create:
            room = self.create(room_id, creator=creator)
        return room

    def create(
        self,
        room_id: str | None = None,
        options: RoomOptions | None = None,
        creator: str | None = None,
    ) -> Room:
        """A new started room. ``creator`` is the client address the creation is charged to
        (None: the operator); CreationRefused when the quota says no."""
        if room_id is None:
            room_id = self._new_id()
        if room_id in self.rooms:
            raise RoomExists(room_id)
        self.quota.check(len(self.rooms), creator, self.clock.now())
        room = Room(
            room_id,
            options or self.default_options(),
            self.limits,
            self.tokens,
            self.metrics.ticks,
            self._room_idle,
            self.clock,
            self.tick_phase,
        )
        try:
            room.start()
        except Exception as exc:
            log.exception("room %s: logic %s failed to start", room_id, room.options.logic)
            raise RoomFailed(f"room logic failed to start: {exc}"[:120]) from None
        self.rooms[room_id] = room
        room.on_seats = self._seats_changed
        self.match_index.add(room)
        if not room.options.private:
            self.public_ids.add(room_id)
        return room

    def _seats_changed(self, room: Room) -> None:
        self.match_index.seats_changed(room)

    def _new_id(self) -> str:
        while True:
            room_id = secrets.token_urlsafe(8)
            if room_id not in self.rooms:
                return room_id

    def public_page(self, after: str | None, limit: int) -> list[Room]:
        """Up to ``limit`` public rooms in id order, from the first id after ``after``."""
        return [self.rooms[room_id] for room_id in self.public_ids.page(after, limit)]

    def matchmake(self, logic: str, meta: dict[str, Any], creator: str | None = None) -> Room:
        """The fullest public room of that logic and meta with a free seat, else a new one."""
        found = self.match_index.find(logic, meta)
        if found is not None:
            return found
        options = self.default_options(logic=logic, meta=dict(meta))
        return self.create(options=options, creator=creator)

    async def dispose(self, room_id: str, code: CloseCode = CloseCode.NO_ROOM) -> bool:
        room = self._forget(room_id)
        if room is None:
            return False
        await room.close(code)
        return True

    def _forget(self, room_id: str) -> Room | None:
        """Take the room out of every lookup at once: a later join creates a new one."""
        room = self.rooms.pop(room_id, None)
        if room is not None:
            self.match_index.remove(room)
            self.public_ids.remove(room_id)
        return room

    def _room_idle(self, room: Room) -> None:
        """The idle timer fired. The room leaves the registry now, in the same step as the
        emptiness check, so no join can land in a room already promised to the disposal:
        only the closing itself (an await) is left to a task."""
        if self.rooms.get(room.id) is not room or room.roster:
            return
        self._forget(room.id)
        task = asyncio.get_running_loop().create_task(room.close(CloseCode.NO_ROOM))
        self._disposals.add(task)
        task.add_done_callback(self._disposals.discard)

    async def start(self) -> None:
        """Connect to whatever the rooms are shared through (nothing, in one process)."""

    async def close(self) -> None:
        """Dispose every room (members get ``code``) and await every disposal."""
        for room_id in list(self.rooms):
            await self.dispose(room_id, CloseCode.RESTART)
        for task in list(self._disposals):
            with contextlib.suppress(asyncio.CancelledError):
                await task
