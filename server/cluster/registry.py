"""The rooms of a worker that shares them with other workers through Redis.

The same ``RoomRegistry`` (the rooms this worker owns, ticked here as in one process),
plus what makes the cluster look like one process to every client: a join for a room
owned elsewhere gets a ``RemoteRoom`` that forwards to its owner; a new room is claimed
(fenced by an epoch) before it exists; the HTTP API reads the directory every owner keeps
in Redis, and sends kick and delete to the owner.
"""

from __future__ import annotations

from typing import Any

from tickrelay.protocol import CloseCode
from tickrelay.server.backplane import Backplane
from tickrelay.server.clock import Clock
from tickrelay.server.cluster import checkpoint
from tickrelay.server.cluster.checkpoint import Checkpoint
from tickrelay.server.cluster.directory import described
from tickrelay.server.cluster.items import HANDOVER
from tickrelay.server.cluster.lease import Claim
from tickrelay.server.cluster.node import ClusterNode
from tickrelay.server.cluster.remote_room import RemoteRoom, RoomMoved
from tickrelay.server.links import MemberLink, RoomLink
from tickrelay.server.members import Member
from tickrelay.server.metrics import Metrics
from tickrelay.server.refusal import JoinRefusal
from tickrelay.server.registry import OwnerSilent, RoomExists, RoomRegistry
from tickrelay.server.room import Room
from tickrelay.server.room_options import RoomOptions
from tickrelay.server.settings import Settings
from tickrelay.server.tick import Phase

_ABSENT = object()
MOVES = 3  # a join follows a room through at most this many takeovers


class ClusterRegistry(RoomRegistry):
    """A worker's rooms plus its view of the cluster's."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        backplane: Backplane,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(settings, metrics, backplane, clock)
        assert settings.redis_url
        operations = {"kick": self._kick_here, "delete": self._delete_here}
        self.tick_phase = Phase(self.clock)
        self.node = ClusterNode(
            settings.redis_url,
            self.tick_phase,
            self.rooms,
            self._make_room,
            self._let_go,
            operations,
            flush_interval=settings.cluster_flush_ms / 1000,
            input_lead=settings.cluster_input_lead_ms / 1000,
            lease_ttl=settings.cluster_lease_ms / 1000,
            checkpoint_interval=settings.checkpoint_ms / 1000,
            checkpoint_ttl=max(120.0, 4 * settings.resume_grace),
        )

    @property
    def healthy(self) -> bool:
        return self.node.healthy

    def cluster_stats(self) -> dict[str, Any]:
        return self.node.stats()

    async def start(self) -> None:
        await self.node.start()

    async def close(self) -> None:
        """A drain: every room owned here is saved, released and announced to the
        workers with members in it, which take it over at once; then members here get
        ``1012`` and resume elsewhere with their state."""
        for room_id in list(self.rooms):
            await self._hand_over(room_id)
        for room_id in list(self.rooms):  # not handed over (Redis away): a takeover later
            await self._let_go(room_id, CloseCode.RESTART)
        await super().close()
        await self.node.close()

    # Joins -------------------------------------------------------------------------------

    async def locate(
        self, room_id: str, create: bool, creator: str | None = None
    ) -> Room | RemoteRoom | None:
        room = self.rooms.get(room_id)
        if room is not None:
            return room
        remote = self.node.remote.get(room_id)
        if remote is not None:
            return remote
        if not create:
            found = await self.node.leases.owner(room_id)
            if found is not None and found[0] != self.node.worker_id:
                return self.node.remote_room(room_id, *found)
            if found is None and not await self.node.checkpoints.exists(room_id):
                return self.rooms.get(room_id)
        return await self.node.acquire(room_id, create, creator)

    async def join(
        self,
        room: RoomLink,
        link: MemberLink,
        pid: str | None,
        spectator: bool,
        resume_token: str | None,
        spectate_only: bool,
    ) -> tuple[RoomLink, Member]:
        """A room that moves while the join waits (a takeover) is joined where it went."""
        for _ in range(MOVES):
            try:
                if isinstance(room, RemoteRoom):
                    seat = await room.join(link, pid, spectator, resume_token, spectate_only)
                    return room, seat  # type: ignore[return-value]
                return await super().join(room, link, pid, spectator, resume_token, spectate_only)
            except RoomMoved:
                moved = await self.locate(room.id, create=False)  # type: ignore[attr-defined]
                if moved is None:
                    raise
                room = moved
        raise RoomMoved()

    # Owning rooms ------------------------------------------------------------------------

    def _create_owned(
        self, room_id: str, options: RoomOptions | None, creator: str | None, epoch: int
    ) -> Room:
        try:
            room = self.create(room_id, options, creator)
        except Exception:
            self.node.give_back(room_id, epoch)  # refused (quota) or failed: not ours to keep
            raise
        self.node.owned(room, epoch)
        return room

    def _make_room(
        self,
        room_id: str,
        saved: Checkpoint | None,
        epoch: int,
        creator: str | None,
    ) -> Room:
        """A room claimed under ``epoch``: new, or rebuilt from its checkpoint."""
        options = saved.options if saved is not None else None
        room = self._create_owned(room_id, options, creator if saved is None else None, epoch)
        if saved is not None:
            checkpoint.restore(room, saved)
        return room

    async def _let_go(self, room_id: str, code: CloseCode) -> bool:
        """The room leaves this worker but not the cluster (demoted, or handed over)."""
        room = super()._forget(room_id)
        if room is None:
            return False
        self.node.let_go(room)
        await room.close(code, "server restarting")
        return True

    async def _hand_over(self, room_id: str) -> None:
        room = self.rooms.get(room_id)
        epoch = self.node.epochs.get(room_id)
        if room is None or epoch is None:
            return
        await room.ticks.stop()  # nothing changes after the last checkpoint
        workers = {peer.worker for (rid, _), peer in self.node.peers.items() if rid == room_id}
        if await self.node.checkpoints.hand_over(room, epoch):
            self.node.handovers += 1
            for worker in workers:
                self.node.send(worker, (HANDOVER, room_id, epoch))
            await self._let_go(room_id, CloseCode.RESTART)

    def _seats_changed(self, room: Room) -> None:
        super()._seats_changed(room)
        self.node.directory.changed(room)

    def _forget(self, room_id: str) -> Room | None:
        room = super()._forget(room_id)
        if room is not None:
            self.node.disowned(room)
        return room

    # The HTTP API, cluster-wide ----------------------------------------------------------

    async def open(
        self, room_id: str | None, options: RoomOptions, creator: str | None
    ) -> dict[str, Any]:
        room_id = room_id or self._new_id()
        claim = await self._claim(room_id)
        if not claim.won or room_id in self.rooms:
            raise RoomExists(room_id)
        return self._create_owned(room_id, options, creator, claim.epoch).describe()

    async def describe(self, room_id: str) -> dict[str, Any] | None:
        room = self.rooms.get(room_id)
        if room is not None:
            return room.describe()
        entry = await self.node.directory.describe(room_id)
        if entry is None or not await self._alive([entry]):
            return None
        return described(entry)

    async def listing(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        entries = await self._alive(await self.node.directory.page(after, limit))
        return [described(entry) for entry in entries]

    async def find_match(self, logic: str, meta: dict[str, Any], creator: str | None) -> str:
        """The fullest public room of that logic and meta with a free seat, cluster-wide;
        else a new one here. A room that fills before the client's join answers 4009: the
        client asks again (docs/PROTOCOL.md section 10)."""
        candidates = [
            entry
            for entry in await self._alive(await self.node.directory.open_rooms(logic))
            if not entry["private"]
            and entry["players"] < entry["max_players"]
            and all(entry["meta"].get(key, _ABSENT) == value for key, value in meta.items())
        ]
        if candidates:
            return max(candidates, key=lambda entry: (entry["players"], -entry["t0_ms"]))["id"]
        options = self.default_options(logic=logic, meta=dict(meta))
        while True:  # a fresh random id is as good as unclaimed; if not, take another
            room_id = self._new_id()
            claim = await self._claim(room_id)
            if claim.won:
                return self._create_owned(room_id, options, creator, claim.epoch).id

    async def delete(self, room_id: str) -> bool:
        if room_id in self.rooms:
            return await super().delete(room_id)
        status, _ = await self._ask_owner("delete", room_id, None)
        return status == 204

    async def kick(self, room_id: str, pid: str) -> bool | None:
        if room_id in self.rooms:
            return await super().kick(room_id, pid)
        status, value = await self._ask_owner("kick", room_id, pid)
        if status == 204:
            return True
        return False if value == "no such player" else None

    async def _claim(self, room_id: str) -> Claim:
        try:
            return await self.node.claim(room_id)
        except JoinRefusal as refusal:  # Redis settles after a restart for too long
            raise OwnerSilent(refusal.reason) from None

    async def _ask_owner(self, op: str, room_id: str, arg: Any) -> tuple[int, Any]:
        found = await self.node.leases.owner(room_id)
        if found is None or found[0] == self.node.worker_id:
            return 404, "no such room"
        status, value = await self.node.ask(found[0], op, room_id, arg)
        if status == 504:
            raise OwnerSilent(value)
        return status, value

    async def _kick_here(self, room_id: str, pid: str) -> tuple[int, Any]:
        kicked = await super().kick(room_id, pid)
        if kicked is None:
            return 404, "no such room"
        return (204, None) if kicked else (404, "no such player")

    async def _delete_here(self, room_id: str, _: Any) -> tuple[int, Any]:
        return (204, None) if await super().delete(room_id) else (404, "no such room")

    async def _alive(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Entries whose owner holds its lease: a dead owner's rooms are gone with it."""
        owners = sorted({entry["owner"] for entry in entries})
        alive = await self.node.leases.alive(owners)
        return [entry for entry in entries if entry["owner"] in alive]
