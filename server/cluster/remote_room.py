"""A room owned by another worker, as this worker's connections see it.

``RemoteRoom`` implements ``RoomLink``: a connection joined to it forwards its join,
inputs, events, leave and end to the owner, after its own rate limits and parsing (pings
are answered by the connection itself). What the owner fans out arrives once for this
worker and goes to the local connections as it would from a local room: states through
the mirror into the latest-wins outboxes, reliable messages to the members named.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

from tickrelay.protocol import CloseCode, Event, Input, LeaveReason
from tickrelay.server.cluster.items import ADOPT, ENDED, EVENT, INPUT, JOIN, LEAVE, RESYNC
from tickrelay.server.cluster.mirror import ChainBroken, RoomMirror
from tickrelay.server.cluster.owner_ticks import OwnerTicks
from tickrelay.server.links import MemberLink
from tickrelay.server.refusal import JoinRefusal
from tickrelay.server.wire import PackedWire

log = logging.getLogger("tickrelay.cluster")

Send = Callable[[str, Any], None]
SendBy = Callable[[str, Any, float], None]  # (worker, item, leave by): inputs for a tick

_mids = itertools.count(1)


class RoomMoved(JoinRefusal):
    """The room changed owner while a join waited: the join is tried again where it is
    now (a client that still sees this gets ``1013``, try again)."""

    def __init__(self) -> None:
        super().__init__(CloseCode.TRY_AGAIN, "the room moved to another worker, try again")


class RemoteSeat:
    """A connection's handle on its place in a room owned elsewhere."""

    __slots__ = ("mid", "pid")

    def __init__(self, mid: int, pid: str) -> None:
        self.mid = mid
        self.pid = pid


class RemoteRoom:
    """The local side of a room whose owner is ``owner``; one per room and worker."""

    def __init__(
        self,
        room_id: str,
        owner: str,
        epoch: int,
        send: Send,
        send_by: SendBy,
        now: Callable[[], float],
        began: Callable[[], float],
        on_empty: Callable[[RemoteRoom], None],
        input_lead: float = 0.003,
        join_timeout: float = 5.0,
    ) -> None:
        self.id = room_id
        self.owner = owner
        self.epoch = epoch
        self._send = send
        # Inputs leave ``input_lead`` ahead of the owner's next tick (``OwnerTicks``, known
        # once the owner told the room's rate and sent a state); until then, as ``send``.
        self._send_by = send_by
        self._now = now
        # When the batch being read began on the owner (our loop time): its arrival, less
        # how long the owner held it (``Batch.held``).
        self._began = began
        self._input_lead = input_lead
        self._ticks: OwnerTicks | None = None
        self._input_due = -math.inf  # when this tick's inputs leave (loop time)
        self._on_empty = on_empty
        self._join_timeout = join_timeout
        # Welcomed members get every state; a joining one waits for its welcome first (the
        # first reliable message the owner sends it), or a state could overtake it.
        self.links: dict[int, MemberLink] = {}
        self.pids: dict[int, str] = {}  # mid -> pid, once joined: what an adoption names
        self._unwelcomed: dict[int, MemberLink] = {}
        self._joining: dict[int, asyncio.Future[str]] = {}
        self.mirror = RoomMirror()
        self._resyncing = False
        self.resyncs = 0

    # RoomLink: what local connections do ------------------------------------------------

    async def join(
        self,
        link: MemberLink,
        pid: str | None,
        spectator: bool,
        resume_token: str | None,
        spectate_only: bool,
    ) -> RemoteSeat:
        """Ask the owner for a place; what it sends the member meanwhile (the welcome)
        already reaches ``link``. Raises the owner's JoinRefusal, or 1013 on no answer."""
        mid = next(_mids)
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._unwelcomed[mid] = link
        self._joining[mid] = answer
        self._send(self.owner, (JOIN, self.id, mid, pid, spectator, resume_token, spectate_only))
        try:
            async with asyncio.timeout(self._join_timeout):
                joined_pid = await answer
        except TimeoutError:
            self._forget(mid, ended=True)
            raise JoinRefusal(CloseCode.TRY_AGAIN, "the room's worker did not answer") from None
        except JoinRefusal:
            self._forget(mid, ended=False)
            raise
        finally:
            self._joining.pop(mid, None)
        return RemoteSeat(mid, joined_pid)

    def receive_input(self, seat: RemoteSeat, message: Input) -> None:
        item = (INPUT, self.id, seat.mid, message.seq, message.d, message.room)
        due = self._input_due
        now = self._now()
        if now >= due:  # the inputs of the tick it was for have left: the next tick's
            ticks = self._ticks
            due = ticks.due(now, self._input_lead) if ticks is not None else None
            if due is None:  # the owner's schedule is not known yet
                self._send(self.owner, item)
                return
            self._input_due = due
        self._send_by(self.owner, item, due)

    def receive_event(self, seat: RemoteSeat, message: Event) -> None:
        self._send(self.owner, (EVENT, self.id, seat.mid, message.d, message.to))

    def leave(self, seat: RemoteSeat) -> None:
        self._send(self.owner, (LEAVE, self.id, seat.mid))

    def connection_ended(
        self, seat: RemoteSeat, link: MemberLink, reason: LeaveReason | None
    ) -> None:
        if self._link(seat.mid) is link:
            self._forget(seat.mid, ended=True, reason=reason)

    def _forget(self, mid: int, ended: bool, reason: LeaveReason | None = None) -> None:
        self.links.pop(mid, None)
        self.pids.pop(mid, None)
        self._unwelcomed.pop(mid, None)
        if ended:
            value = reason.value if reason is not None else None
            self._send(self.owner, (ENDED, self.id, mid, value))
        if not self.links and not self._unwelcomed and not self._joining:
            self._on_empty(self)

    # What the owner sends --------------------------------------------------------------

    def joined(self, mid: int, pid: str, rate: int) -> None:
        if self._ticks is None or self._ticks.rate != rate:
            self._ticks = OwnerTicks(rate)
        answer = self._joining.get(mid)
        if answer is not None and not answer.done():
            self.pids[mid] = pid
            answer.set_result(pid)

    def refused(self, mid: int, code: int, reason: str) -> None:
        """A join refused, or an adoption: a member whose place is gone is closed."""
        answer = self._joining.get(mid)
        if answer is not None and not answer.done():
            answer.set_exception(JoinRefusal(code, reason))
            return
        link = self._link(mid)
        if link is not None:
            self._forget(mid, ended=False)
            link.close(code, reason)

    # A new owner (a takeover) ------------------------------------------------------------

    def moved_to(self, owner: str, epoch: int) -> None:
        """Another worker took the room over: our members ask it for their places back,
        the mirror starts again from its first snap, and waiting joins are tried again."""
        if epoch <= self.epoch and owner == self.owner:
            return
        self.owner, self.epoch = owner, epoch
        self.mirror = RoomMirror()
        if self._ticks is not None:  # the new owner ticks the room on its own schedule
            self._ticks = OwnerTicks(self._ticks.rate)
            self._input_due = -math.inf
        self._resyncing = False
        for mid, pid in self.members():
            self._send(owner, (ADOPT, self.id, mid, pid))
        self._fail_joins()

    def members(self) -> list[tuple[int, str]]:
        """(mid, pid) of every member that holds a place (welcomed or not yet)."""
        self._welcome_joined()
        return [(mid, self.pids[mid]) for mid in self.links if mid in self.pids]

    def hand_over(self) -> list[tuple[MemberLink, str]]:
        """This worker took the room over: its members' links, to adopt into the room
        here; this remote room is empty afterwards and forwards nothing more."""
        self._welcome_joined()
        adopted = [(self.links[mid], pid) for mid, pid in self.members()]
        self.links.clear()
        self.pids.clear()
        self._fail_joins()
        return adopted

    def _welcome_joined(self) -> None:
        """A member whose join was answered but whose welcome the owner did not send (it
        died between the two) holds a place all the same."""
        for mid in [mid for mid in self._unwelcomed if mid in self.pids]:
            self.links[mid] = self._unwelcomed.pop(mid)

    def _fail_joins(self) -> None:
        for answer in self._joining.values():
            if not answer.done():
                answer.set_exception(RoomMoved())

    def state(self, packed: bytes, tick: int, base: int, key: bytes | None) -> None:
        self._owner_ticked()
        try:
            frame = self.mirror.apply_delta(packed, tick, base, key)
        except ChainBroken:
            self.lost()  # once per break, until the snap comes
            return
        for link in self.links.values():
            link.push_state(frame)

    def snap(self, packed: bytes, tick: int) -> None:
        self._owner_ticked()
        frame = self.mirror.apply_snap(packed, tick)
        self._resyncing = False
        for link in self.links.values():
            link.push_state(frame)

    def _owner_ticked(self) -> None:
        """A state arrived, made right after the owner's tick: when its next tick comes. Its
        batch left when the owner's burst of steps ended, which for many rooms can take
        longer than the inputs' lead: the estimate goes by when the batch began instead."""
        if self._ticks is not None:
            self._ticks.state_arrived(self._began())
            self._input_due = -math.inf

    def lost(self) -> None:
        """Batches from the owner were lost: the mirror may have missed a state."""
        if not self._resyncing:
            self._resyncing = True
            self.resyncs += 1
            self._send(self.owner, (RESYNC, self.id))

    def _link(self, mid: int) -> MemberLink | None:
        link = self.links.get(mid)
        return link if link is not None else self._unwelcomed.get(mid)

    def pin(self, mid: int) -> None:
        link, frame = self.links.get(mid), self.mirror.frame
        if link is not None and frame is not None:
            link.push_state(frame)

    def reliable(self, packed: bytes, mids: list[int]) -> None:
        wire = PackedWire(packed)
        links = self.links
        for mid in mids:
            link = links.get(mid)
            if link is None:
                link = self._unwelcomed.pop(mid, None)
                if link is None:
                    continue
                links[mid] = link  # its welcome: states may follow from now on
            link.push_reliable(wire)

    def close_member(self, mid: int, code: int, reason: str) -> None:
        link = self._link(mid)
        if link is not None:
            link.close(code, reason)

    def close_all(self, code: int, reason: str) -> None:
        """The owner is gone (or this worker stops): every local member is closed."""
        for link in [*self.links.values(), *self._unwelcomed.values()]:
            link.close(code, reason)
        for answer in self._joining.values():
            if not answer.done():
                answer.set_exception(JoinRefusal(code, reason))
