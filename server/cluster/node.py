"""This worker's place in the cluster: its bus, its lease, and the rooms it shares.

The node routes what other workers send. As an *owner* it serves the members of its rooms
connected elsewhere through one ``Peer`` per room and worker (joins, inputs, events, ends,
resyncs in; states and reliable messages out). As a *member worker* it feeds the
``RemoteRoom``s its connections joined (states, reliable messages, closes in; forwarded
messages out). A lease loop keeps this worker's lease and watches the workers it shares
rooms with: members on a worker that died are dropped into their resume grace, and a
room whose owner died is taken over from its checkpoint by a worker that has members in
it (or gets a join for it); the other workers' members are adopted there, still
connected. A draining owner saves and releases its rooms and tells those workers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from tickrelay.protocol import CloseCode, Event, LeaveReason
from tickrelay.protocol.messages import _new_input
from tickrelay.server.cluster.bus import Bus, BusHealth
from tickrelay.server.cluster.checkpoint import Checkpoint
from tickrelay.server.cluster.checkpoints import Checkpoints
from tickrelay.server.cluster.directory import Directory
from tickrelay.server.cluster.envelope import Batch
from tickrelay.server.cluster.items import (
    ADOPT,
    ANSWER,
    ASK,
    CLOSE,
    ENDED,
    EVENT,
    HANDOVER,
    INPUT,
    JOIN,
    JOINED,
    LEAVE,
    PIN,
    REFUSED,
    RELIABLE,
    RESYNC,
    SNAP,
    STATE,
    TAKEN,
)
from tickrelay.server.cluster.lease import Claim, Leases, Renewal
from tickrelay.server.cluster.peers import Peer, RemoteMemberLink
from tickrelay.server.cluster.remote_room import RemoteRoom
from tickrelay.server.cluster.sequence import Arrival, Received
from tickrelay.server.refusal import JoinRefusal
from tickrelay.server.tasks import raise_if_cancelling
from tickrelay.server.tick import Phase

if TYPE_CHECKING:
    from tickrelay.server.room import Room

log = logging.getLogger("tickrelay.cluster")

REFRESH_EVERY = 5.0  # seconds between rewrites of every owned room's directory entry
ASK_TIMEOUT = 3.0
RECOVERING = "the cluster is recovering, try again"
#: Boot ``n`` ticks its rooms ``n`` times this fraction of a period (modulo one) into each
#: period. Multiples of the golden ratio's fraction lie far apart for any number of
#: consecutive boots (two workers: 0.38 of a period apart; three: at least 0.24).
PHASE_STEP = 0.6180339887498949

Operation = Callable[[str, Any], Coroutine[Any, Any, Any]]
# (room id, checkpoint or None for a new room, epoch, creator) -> the room, owned here
MakeRoom = Callable[[str, Checkpoint | None, int, str | None], "Room"]
# (room id, close code): the room leaves this worker without being deleted (it lives on)
LetGo = Callable[[str, CloseCode], Coroutine[Any, Any, bool]]


class ClusterNode:
    """Owns the bus, the lease loop, the peers of owned rooms and the remote rooms."""

    def __init__(
        self,
        url: str,
        phase: Phase,
        rooms: dict[str, Room],
        make_room: MakeRoom,
        let_go: LetGo,
        operations: dict[str, Operation],
        flush_interval: float = 0.0,
        input_lead: float = 0.003,
        lease_ttl: float = 2.0,
        checkpoint_interval: float = 1.0,
        checkpoint_ttl: float = 120.0,
    ) -> None:
        self.worker_id = secrets.token_hex(6)
        self.bus = Bus(url, self.worker_id, self._on_batch, flush_interval=flush_interval)
        self.leases = Leases(self.bus.client, self.worker_id, secrets.token_hex(8))
        self.lease_ttl = lease_ttl
        self.renew_every = lease_ttl / 5
        self._rooms = rooms  # the registry's: the rooms this worker owns
        self._make_room = make_room
        self._let_go = let_go
        self._operations = operations
        self.epochs: dict[str, int] = {}  # room id -> the epoch this worker owns it under
        self.directory = Directory(self.bus.client, self.worker_id, self.epochs)
        self.checkpoints = Checkpoints(
            self.bus.client, self.worker_id, rooms, self.epochs,
            checkpoint_interval, checkpoint_ttl,
        )  # fmt: skip
        # Claims under way, one per room: a join and a takeover of one room share it.
        self._acquiring: dict[str, asyncio.Future[Room | RemoteRoom | None]] = {}
        self._taking_over: set[str] = set()
        # Until then, this worker does not judge others dead: it has just lost Redis or
        # its lease, and they may not have had the chance to renew theirs.
        self._unsettled_until = 0.0
        self.takeovers = 0
        self.handovers = 0
        self.peers: dict[tuple[str, str], Peer] = {}
        self.remote: dict[str, RemoteRoom] = {}
        # Rooms this worker is claiming: joins for them wait until the room exists here.
        self._claiming: dict[str, list[tuple[str, list[Any]]]] = {}
        self._asks: dict[int, asyncio.Future[tuple[int, Any]]] = {}
        self._ask_ids = iter(range(1, 1 << 62))
        self._lease_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lost_batches = 0
        self._batch_began = 0.0  # see RemoteRoom._began
        self.items_received = 0
        self.bad_items = 0
        self.send = self.bus.send  # owner fan-out, answers, control: this loop turn
        self.forward = self.bus.forward  # a remote room's joins, events, leaves: next flush
        self.forward_by = self.bus.forward_by  # its inputs: ahead of the owner's tick
        self.input_lead = input_lead
        self._turn = lambda: self.bus.batcher.turns
        self._handlers = self._handler_table()
        # Where in the period the rooms owned here tick: set from this worker's boot number
        # (see ``_number_boot``), apart from the other workers' phases.
        self.phase = phase
        self.boot_number: int | None = None

    @property
    def healthy(self) -> bool:
        return self.bus.health is BusHealth.UP

    def stats(self) -> dict[str, Any]:
        """Per worker: what it shares, what it sent and what it knows it lost."""
        batcher = self.bus.batcher
        return {
            "worker": self.worker_id,
            "healthy": self.healthy,
            "tick_phase": round(self.phase.fraction, 4),
            "owned_rooms": len(self.epochs),
            "remote_rooms": len(self.remote),
            "peers": len(self.peers),
            "batches_sent": batcher.batches_sent,
            "items_sent": batcher.items_sent,
            "items_received": self.items_received,
            "batches_lost_sending": batcher.batches_lost,
            "publishes_refused": self.bus.publishes_refused,
            "batches_lost_receiving": self.lost_batches,
            "resyncs": sum(remote.resyncs for remote in self.remote.values()),
            "bad_items": self.bad_items + self.bus.bad_batches,
            "takeovers": self.takeovers,
            "handovers": self.handovers,
            "checkpoints_written": self.checkpoints.written,
            "checkpoints_refused": self.checkpoints.refused,
            "checkpoint_failures": self.checkpoints.failed,
            "checkpoint_encode_seconds": round(self.checkpoints.encode_seconds, 6),
            "directory_writes_refused": self.directory.refused,
        }

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster; without Redis yet, the worker starts unready and keeps trying."""
        try:
            await self.leases.renew(self.lease_ttl)
            await self._number_boot()
        except (RedisError, OSError) as exc:
            log.warning("Redis is not reachable yet (the worker is not ready): %s", exc)
        await self.bus.start()
        self.checkpoints.start()
        self._lease_task = asyncio.get_running_loop().create_task(
            self._keep_lease(), name="cluster-lease"
        )

    async def close(self) -> None:
        for remote in list(self.remote.values()):
            remote.close_all(CloseCode.RESTART, "server restarting")
        task, self._lease_task = self._lease_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pending in list(self._tasks):
            pending.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.checkpoints.close()
        await self.directory.close()
        await self.bus.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """A task this node owns (cancelled and awaited on close)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster task %s failed", task.get_name(), exc_info=task.exception())

    # Rooms owned here --------------------------------------------------------------------

    def owned(self, room: Room, epoch: int) -> None:
        self.epochs[room.id] = epoch
        self.directory.changed(room)
        room.on_roster = self.checkpoints.roster_changed
        self.checkpoints.roster_changed(room)

    def claiming(self, room_id: str) -> None:
        """A claim is under way: another worker that already sees us as the owner may
        send a join before the room exists here."""
        self._claiming.setdefault(room_id, [])

    def claimed(self, room_id: str) -> None:
        """The claim is settled (the room exists here, or not): run the joins that waited."""
        for source, item in self._claiming.pop(room_id, ()):
            self._dispatch(source, item)

    def disowned(self, room: Room) -> None:
        """The room is gone for good: its ownership, directory entry and checkpoint too
        (the last two only under the epoch this worker still owned it by)."""
        epoch = self.let_go(room, detach=False)  # its members everywhere are closed
        if epoch is not None:
            self.directory.removed(room, epoch)
            self.spawn(self._delete(room.id, epoch), name="cluster-release")

    def let_go(self, room: Room, detach: bool = True) -> int | None:
        """The room leaves this worker but lives on elsewhere (a handover, a demotion):
        with ``detach``, members on other workers are not told anything from here (the
        new owner adopts them)."""
        epoch = self.epochs.pop(room.id, None)
        for key in [key for key in self.peers if key[0] == room.id]:
            peer = self.peers.pop(key)
            if detach:
                peer.detach()
        self.checkpoints.forget(room.id)
        return epoch

    async def _delete(self, room_id: str, epoch: int) -> None:
        await self.checkpoints.delete(room_id, epoch)
        await self._release(room_id, epoch)

    def give_back(self, room_id: str, epoch: int) -> None:
        """Release a claim (a room that is gone, or one that could not be made): the next
        claim, by any worker, needs no lease to lapse."""
        self.spawn(self._release(room_id, epoch), name="cluster-release")

    async def _release(self, room_id: str, epoch: int) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.leases.release(room_id, epoch)

    # Rooms owned elsewhere ---------------------------------------------------------------

    def remote_room(self, room_id: str, owner: str, epoch: int) -> RemoteRoom:
        room = self.remote.get(room_id)
        if room is None:
            room = RemoteRoom(
                room_id, owner, epoch, self.forward, self.forward_by,
                asyncio.get_running_loop().time, lambda: self._batch_began,
                self._remote_empty, self.input_lead,
            )  # fmt: skip
            self.remote[room_id] = room
        elif room.owner != owner and epoch >= room.epoch:
            room.moved_to(owner, epoch)
        return room

    # Claiming a room: a new one, or a takeover from its checkpoint ------------------------

    async def acquire(
        self, room_id: str, create: bool, creator: str | None = None
    ) -> Room | RemoteRoom | None:
        """The room a join goes to, claimed if no live worker owns it: restored from its
        checkpoint when it had an owner before, else new (``create``) or None. One claim
        per room at a time on this worker; a join and a takeover of one room share it."""
        pending = self._acquiring.get(room_id)
        if pending is not None:
            return await asyncio.shield(pending)
        result: asyncio.Future[Room | RemoteRoom | None]
        result = self._acquiring[room_id] = asyncio.get_running_loop().create_future()
        self.claiming(room_id)
        try:
            found = await self._acquire(room_id, create, creator)
        except BaseException as exc:
            result.set_exception(exc)
            result.exception()  # retrieved: a claim nobody else waited for is not an error
            raise
        finally:
            del self._acquiring[room_id]
            self.claimed(room_id)
        result.set_result(found)
        return found

    async def _acquire(
        self, room_id: str, create: bool, creator: str | None
    ) -> Room | RemoteRoom | None:
        claim = await self.claim(room_id)
        if not claim.won:
            return self.remote_room(room_id, claim.owner, claim.epoch)
        room = self._rooms.get(room_id)
        if room is not None:
            return room
        saved = await self.checkpoints.load(room_id) if claim.epoch > 1 else None
        if saved is None and not create:
            self.give_back(room_id, claim.epoch)
            return None
        live: set[str] = set()
        if saved is not None:
            workers = {m.worker for m in saved.members if m.worker and m.worker != self.worker_id}
            live = await self.leases.alive(sorted(workers))
        room = self._make_room(room_id, saved, claim.epoch, creator)
        if saved is not None:
            self._took_over(room, claim.epoch, live)
        return room

    async def claim(self, room_id: str) -> Claim:
        """A claim, waiting out a settling Redis (owners re-asserting after a restart, a
        few lease renewals): the join is late rather than refused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lease_ttl + 2 * self.renew_every
        while True:
            claim = await self.leases.claim(room_id)
            if not claim.unsettled:
                return claim
            if loop.time() >= deadline:
                raise JoinRefusal(CloseCode.TRY_AGAIN, RECOVERING)
            await asyncio.sleep(self.renew_every / 2)

    def _took_over(self, room: Room, epoch: int, live: set[str]) -> None:
        """The room is ours from its checkpoint: our own members are adopted here at once,
        the live workers' through TAKEN; whoever is not adopted in time is away."""
        self.takeovers += 1
        log.warning("room %s: taken over under epoch %d", room.id, epoch)
        remote = self.remote.pop(room.id, None)
        if remote is not None:
            for link, pid in remote.hand_over():
                try:
                    link.joined(room, room.adopt(link, pid))  # type: ignore[attr-defined]
                except JoinRefusal as refusal:
                    link.close(refusal.code, refusal.reason)
        for worker in live:
            self.send(worker, (TAKEN, room.id, epoch))
        self.spawn(self._settle(room), name="cluster-settle")

    async def _settle(self, room: Room) -> None:
        await asyncio.sleep(2 * self.renew_every + 0.2)  # a TAKEN and its ADOPTs' round trip
        if self._rooms.get(room.id) is room:
            room.settle()

    def _take_over(self, remote: RemoteRoom) -> None:
        """Our members' room lost its owner (dead, or handing over): claim it, or follow
        the worker that did."""
        if remote.id not in self._taking_over:
            self._taking_over.add(remote.id)
            self.spawn(self._taking(remote), name="cluster-takeover")

    async def _taking(self, remote: RemoteRoom) -> None:
        try:
            found = await self.acquire(remote.id, create=False)
        except JoinRefusal:
            return  # Redis is settling after a restart: the lease loop tries again
        except (RedisError, OSError) as exc:
            log.warning("room %s: takeover failed, retried: %s", remote.id, exc)
            return
        finally:
            self._taking_over.discard(remote.id)
        if found is None and self.remote.get(remote.id) is remote:
            log.warning("room %s: its worker is gone and left no checkpoint", remote.id)
            del self.remote[remote.id]
            remote.close_all(CloseCode.RESTART, "the room's worker stopped")

    def _remote_empty(self, room: RemoteRoom) -> None:
        if self.remote.get(room.id) is room:
            del self.remote[room.id]

    # Operator requests forwarded to the owner --------------------------------------------

    async def ask(self, owner: str, op: str, room_id: str, arg: Any) -> tuple[int, Any]:
        """Run ``op`` on the room's owner; (status, value), 504 when it does not answer."""
        ask_id = next(self._ask_ids)
        answer: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._asks[ask_id] = answer
        self.send(owner, (ASK, ask_id, op, room_id, arg))
        try:
            async with asyncio.timeout(ASK_TIMEOUT):
                return await answer
        except TimeoutError:
            return 504, "the room's worker did not answer"
        finally:
            self._asks.pop(ask_id, None)

    async def _answer(self, source: str, ask_id: int, op: str, room_id: str, arg: Any) -> None:
        operation = self._operations.get(op)
        result = (400, f"unknown operation {op!r}") if operation is None else None
        if operation is not None:
            result = await operation(room_id, arg)
        self.send(source, (ANSWER, ask_id, *result))

    # Incoming ----------------------------------------------------------------------------

    def _on_batch(self, batch: Batch, received: Received) -> None:
        source = batch.source
        self._batch_began = asyncio.get_running_loop().time() - batch.held
        if received.arrival is Arrival.GAP:
            self._lost(source, received.lost)
        self.items_received += len(batch.items)
        for item in batch.items:
            try:
                self._dispatch(source, item)
            except Exception:
                self.bad_items += 1
                log.exception("cluster item from %s failed: %.80r", source, item)

    def _dispatch(self, source: str, item: list[Any]) -> None:
        self._handlers[item[0]](source, item)

    def _handler_table(self) -> dict[int, Callable[[str, list[Any]], None]]:
        def to_remote(method: str, *fields: int) -> Callable[[str, list[Any]], None]:
            def handle(source: str, item: list[Any]) -> None:
                remote = self._current_remote(item[1], item[2])
                if remote is not None:
                    getattr(remote, method)(*(item[f] for f in fields))

            return handle

        return {
            STATE: to_remote("state", 3, 4, 5, 6),
            SNAP: to_remote("snap", 3, 4),
            PIN: to_remote("pin", 3),
            RELIABLE: to_remote("reliable", 3, 4),
            CLOSE: to_remote("close_member", 3, 4, 5),
            JOIN: lambda source, item: self._join(source, *item[1:]),
            INPUT: self._from_member,
            EVENT: self._from_member,
            LEAVE: self._from_member,
            ENDED: self._from_member,
            JOINED: self._joined,
            REFUSED: self._refused,
            RESYNC: self._resync,
            ADOPT: self._adopt,
            TAKEN: self._taken,
            HANDOVER: self._handover,
            ASK: lambda source, item: self.spawn(
                self._answer(source, *item[1:]), name="cluster-answer"
            ),
            ANSWER: self._answered,
        }

    def _adopt(self, source: str, item: list[Any]) -> None:
        """A member of ``source`` asks for its place back after our takeover."""
        room_id, mid, pid = item[1], item[2], item[3]
        room = self._rooms.get(room_id)
        epoch = self.epochs.get(room_id)
        if room is None or epoch is None:
            waiting = self._claiming.get(room_id)
            if waiting is not None:
                waiting.append((source, item))
            else:
                self.send(source, (REFUSED, room_id, mid, CloseCode.RESTART, "room moved"))
            return
        peer = self._peer(room, source, epoch)
        link = peer.link(mid)
        try:
            link.member = room.adopt(link, pid)
        except JoinRefusal as refusal:
            peer.forget(mid)
            self.send(source, (REFUSED, room_id, mid, refusal.code, refusal.reason))

    def _peer(self, room: Room, source: str, epoch: int) -> Peer:
        """The room's members on worker ``source``. The first of any worker makes the room
        tick at this worker's shared instant: its states now leave in a publish, with the
        other shared rooms' (``tick.Phase``)."""
        peer = self.peers.get((room.id, source))
        if peer is None:
            peer = self.peers[room.id, source] = Peer(room.id, source, epoch, self.send,
                                                      self._turn)  # fmt: skip
            room.ticks.share()
        return peer

    def _taken(self, source: str, item: list[Any]) -> None:
        remote = self.remote.get(item[1])
        if remote is not None:
            remote.moved_to(source, item[2])

    def _handover(self, source: str, item: list[Any]) -> None:
        remote = self.remote.get(item[1])
        if remote is not None and remote.owner == source and remote.epoch <= item[2]:
            self._take_over(remote)

    def _joined(self, source: str, item: list[Any]) -> None:
        remote = self.remote.get(item[1])
        if remote is not None:
            remote.epoch = max(remote.epoch, item[2])
            remote.joined(item[3], item[4], item[5])

    def _refused(self, source: str, item: list[Any]) -> None:
        remote = self.remote.get(item[1])
        if remote is not None:
            remote.refused(item[2], item[3], item[4])

    def _resync(self, source: str, item: list[Any]) -> None:
        peer = self.peers.get((item[1], source))
        room = self._rooms.get(item[1])
        if peer is not None and room is not None:
            peer.resync(room.state.last_frame)

    def _answered(self, source: str, item: list[Any]) -> None:
        answer = self._asks.get(item[1])
        if answer is not None and not answer.done():
            answer.set_result((item[2], item[3]))

    def _current_remote(self, room_id: str, epoch: int) -> RemoteRoom | None:
        remote = self.remote.get(room_id)
        if remote is None or epoch < remote.epoch:
            return None  # a former owner's message: fenced off
        remote.epoch = epoch
        return remote

    def _join(
        self,
        source: str,
        room_id: str,
        mid: int,
        pid: str | None,
        spectator: bool,
        resume: str | None,
        spectate_only: bool,
    ) -> None:
        room = self._rooms.get(room_id)
        epoch = self.epochs.get(room_id)
        if room is None or epoch is None:
            waiting = self._claiming.get(room_id)
            if waiting is not None:
                waiting.append(
                    (source, [JOIN, room_id, mid, pid, spectator, resume, spectate_only])
                )
                return
            self.send(source, (REFUSED, room_id, mid, CloseCode.NO_ROOM, "no such room"))
            return
        peer = self._peer(room, source, epoch)
        link = peer.link(mid)
        try:
            link.member = room.join(link, pid, spectator, resume, spectate_only)
        except JoinRefusal as refusal:
            peer.forget(mid)
            self.send(source, (REFUSED, room_id, mid, refusal.code, refusal.reason))
            return
        self.send(source, (JOINED, room_id, epoch, mid, link.member.pid, room.options.tick_rate))

    def _from_member(self, source: str, item: list[Any]) -> None:
        kind, room_id, mid = item[0], item[1], item[2]
        peer = self.peers.get((room_id, source))
        room = self._rooms.get(room_id)
        link = peer.links.get(mid) if peer is not None else None
        if room is None or link is None or link.member is None:
            return
        if kind == INPUT:
            room.receive_input(link.member, _new_input(item[3], item[4], item[5]))
        elif kind == EVENT:
            room.receive_event(link.member, Event(item[3], item[4]))
        elif kind == LEAVE:
            room.leave(link.member)
        else:
            self._ended(peer, link, room, item[3])  # type: ignore[arg-type]

    def _ended(self, peer: Peer, link: RemoteMemberLink, room: Room, reason: str | None) -> None:
        peer.forget(link.mid)
        room.connection_ended(link.member, link, LeaveReason(reason) if reason else None)
        if not peer.links:
            self.peers.pop((peer.room_id, peer.worker), None)

    def _lost(self, source: str, lost: int) -> None:
        """Batches from ``source`` were lost: states are resynchronised from a snap; what
        else was lost (events, inputs, joins) is counted, never silently dropped."""
        self.lost_batches += lost
        log.warning("lost %d batch(es) from worker %s; resynchronising its rooms", lost, source)
        for remote in self.remote.values():
            if remote.owner == source:
                remote.lost()

    # The lease loop ----------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        since_refresh = 0.0
        reachable = True
        while True:
            raise_if_cancelling()
            await asyncio.sleep(self.renew_every)
            try:
                renewal = await self._renew()
                if not reachable:
                    reachable = True
                    log.warning("worker %s reaches Redis again", self.worker_id)
                if renewal is not Renewal.RENEWED:
                    await self._reassert(renewal)
                await self._number_boot()
                await self._watch_workers()
                since_refresh += self.renew_every
                if since_refresh >= REFRESH_EVERY:
                    since_refresh = 0.0
                    await self._refresh()
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                self._unsettle()
                if reachable:
                    reachable = False
                    log.warning(
                        "worker %s cannot reach Redis (rooms owned here keep ticking for "
                        "their local players; not ready): %s", self.worker_id, exc,
                    )  # fmt: skip

    async def _number_boot(self) -> None:
        """Our rooms' phase comes from a number no other boot got, so each worker's states
        and the inputs forwarded to it leave in a loop turn of their own. A room claimed
        before Redis numbered this boot (a claim needs Redis too, so a rare race) starts
        at phase 0, and moves to the worker's instant once shared (``TickLoop.share``)."""
        if self.boot_number is None:
            self.boot_number = await self.leases.boot_number()
            self.phase.fraction = (self.boot_number * PHASE_STEP) % 1.0

    async def _renew(self) -> Renewal:
        knows_rooms = bool(self.epochs or self.remote)
        settle = self.lease_ttl + self.renew_every if knows_rooms else 0.0
        return await self.leases.renew(self.lease_ttl, settle)

    def _unsettle(self) -> None:
        loop = asyncio.get_running_loop()
        self._unsettled_until = loop.time() + self.lease_ttl + 2 * self.renew_every

    @property
    def settled(self) -> bool:
        """Whether this worker may judge another dead by its missing lease."""
        return asyncio.get_running_loop().time() >= self._unsettled_until

    async def _refresh(self) -> None:
        """Every few seconds: directory entries rewritten, checkpoints kept from expiring."""
        for room in self._rooms.values():
            self.directory.changed(room)
        self.directory.retry()  # deletes that failed while Redis was away
        if self.epochs:
            async with self.bus.client.pipeline(transaction=False) as pipe:
                self.checkpoints.refresh(pipe)
                await pipe.execute()

    async def _reassert(self, renewal: Renewal) -> None:
        """Our lease had lapsed (a long pause, or Redis lost its data): keep the rooms whose
        ownership is still ours, give up the others (their members come back elsewhere).
        Redis may have lost our directory entries and checkpoints too: write them again."""
        self._unsettle()
        if not self.epochs:
            return
        log.warning("worker %s lease %s: reasserting its rooms", self.worker_id, renewal.name)
        for room_id, epoch in list(self.epochs.items()):
            if renewal is not Renewal.CONFLICT and await self.leases.reassert(room_id, epoch):
                room = self._rooms.get(room_id)
                if room is not None:
                    self.directory.changed(room)
                continue
            self._demote(room_id)
        self.checkpoints.everything_changed()

    def _demote(self, room_id: str) -> None:
        """Another worker owns the room now: stop at once, members resume on the new owner."""
        room = self._rooms.get(room_id)
        self.epochs.pop(room_id, None)
        if room is not None:
            log.warning("room %s: ownership lost, closing its members with 1012", room_id)
            self.spawn(self._let_go(room_id, CloseCode.RESTART), name="cluster-demote")

    async def _watch_workers(self) -> None:
        workers = {peer.worker for peer in self.peers.values()}
        workers |= {remote.owner for remote in self.remote.values()}
        if not workers or not self.settled:
            return
        alive = await self.leases.alive(sorted(workers))
        for key, peer in list(self.peers.items()):
            if peer.worker not in alive:
                self._worker_died(key, peer)
        for remote in list(self.remote.values()):
            if remote.owner not in alive:
                log.warning("room %s: its worker %s is gone, taking over", remote.id, remote.owner)
                self._take_over(remote)

    def _worker_died(self, key: tuple[str, str], peer: Peer) -> None:
        """Members on a dead worker drop into their resume grace, as a lost socket would."""
        self.peers.pop(key, None)
        room = self._rooms.get(peer.room_id)
        for link in list(peer.links.values()):
            peer.forget(link.mid)
            if room is not None and link.member is not None:
                room.connection_ended(link.member, link, None)
