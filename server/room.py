"""A room: its members, seats, host, presence and resume grace, around its state and tick.

Everything here runs on the event loop between awaits, so a room needs no locks: a join,
a drop, an input or a tick each happens whole. Inputs wait for the next tick; events and
presence go out at once as reliable messages, encoded once for all who receive them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tickrelay.protocol.messages as m
from tickrelay.protocol import CloseCode, ErrorCode, Event, Input, LeaveReason, apply_patch, now_ms
from tickrelay.server import logic as logic_registry
from tickrelay.server.logic import InputRefused, JoinRefused, RoomLogic
from tickrelay.server.metrics import TickStats
from tickrelay.server.state import RoomState, StateTooLarge, encoded_size
from tickrelay.server.tick import TickLoop
from tickrelay.server.wire import Wire

if TYPE_CHECKING:
    from tickrelay.server.connection import Connection
    from tickrelay.server.tokens import ResumeTokens

log = logging.getLogger("tickrelay.room")


@dataclass(frozen=True, slots=True)
class RoomOptions:
    """What a room is created with (defaults come from the settings)."""

    tick_rate: int = 20
    max_players: int = 16
    max_spectators: int = 64
    private: bool = False
    logic: str = "relay"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoomLimits:
    """Per-room bounds taken from the settings."""

    resume_grace: float = 15.0
    idle_timeout: float = 30.0
    gap_messages: int = 1024
    gap_bytes: int = 1024 * 1024
    max_player_bytes: int = 16 * 1024
    max_room_bytes: int = 256 * 1024


class SeatRefused(Exception):
    """No seat or spectator place is free (4009)."""


class Member:
    """A player or spectator of a room, connected or inside its resume grace."""

    __slots__ = (
        "conn",
        "gap",
        "gap_bytes",
        "grace",
        "last_seq",
        "order",
        "pid",
        "resume_token",
        "spectator",
    )

    def __init__(self, pid: str, spectator: bool, order: int) -> None:
        self.pid = pid
        self.spectator = spectator
        self.order = order
        self.conn: Connection | None = None
        self.resume_token = ""
        self.gap: deque[Wire] | None = None
        self.gap_bytes = 0
        self.grace: asyncio.TimerHandle | None = None
        self.last_seq = 0

    @property
    def away(self) -> bool:
        return self.conn is None


class Room:
    """One game room. The endpoint admits connections; the tick loop runs ``_step``."""

    def __init__(
        self,
        room_id: str,
        options: RoomOptions,
        limits: RoomLimits,
        tokens: ResumeTokens,
        tick_stats: TickStats,
        on_empty: Callable[[Room], None],
    ) -> None:
        logic_cls = logic_registry.get(options.logic)
        if logic_cls is None:
            raise ValueError(f"unknown logic {options.logic!r}")
        self.id = room_id
        self.options = options
        self.limits = limits
        self.tokens = tokens
        self.members: dict[str, Member] = {}
        self.seated = 0
        self.spectators = 0
        self.host: str | None = None
        self.state = RoomState(limits.max_player_bytes, limits.max_room_bytes)
        self.closed = False
        self._inputs: list[tuple[Member, Input]] = []
        # While on_input runs: the player states it changed, as they were before (for undo).
        self._journal: dict[str, Any] | None = None
        # New connections whose first snap waits for the next tick (see _send_snap).
        self._want_snap: list[Connection] = []
        self._order = itertools.count()
        self._on_empty = on_empty
        self._idle: asyncio.TimerHandle | None = None
        # Told whenever `seated` changes: the registry keeps its matchmaking index with it.
        self.on_seats: Callable[[Room], None] = lambda room: None
        self.ticks = TickLoop(options.tick_rate, self._step, self._busy, tick_stats)
        self.logic: RoomLogic = logic_cls(self)

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.logic.on_create(dict(self.options.meta))
        self.ticks.start()
        self._arm_idle()

    async def close(self, code: CloseCode = CloseCode.NO_ROOM, reason: str = "room closed") -> None:
        """Dispose: close every member's connection with ``code`` and stop the tick."""
        if self.closed:
            return
        self.closed = True
        self._disarm_idle()
        for member in list(self.members.values()):
            self._forget(member)
            if member.conn is not None:
                member.conn.close(code, reason)
        self.members.clear()
        await self.ticks.stop()
        try:
            self.logic.on_dispose()
        except Exception:
            log.exception("room %s: on_dispose failed", self.id)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "players": self.seated,
            "spectators": self.spectators,
            "max_players": self.options.max_players,
            "max_spectators": self.options.max_spectators,
            "tick_rate": self.options.tick_rate,
            "tick": self.ticks.current,
            "private": self.options.private,
            "logic": self.options.logic,
            "meta": self.options.meta,
        }

    # Admission ---------------------------------------------------------------------------

    def check_place(self, spectator: bool) -> None:
        if spectator:
            if self.spectators >= self.options.max_spectators:
                raise SeatRefused("no spectator place free")
        elif self.seated >= self.options.max_players:
            raise SeatRefused("room full")

    def admit(self, conn: Connection, pid: str, spectator: bool) -> Member:
        """Seat a new player (or place a spectator). ``on_join`` may raise JoinRefused."""
        self.check_place(spectator)
        initial = self._run_on_join(pid, spectator)
        member = Member(pid, spectator, next(self._order))
        member.conn = conn
        conn.member = member
        self.members[pid] = member
        self._disarm_idle()
        if spectator:
            self.spectators += 1
            self._welcome(member, resumed=False)
            self._send_snap(conn)
            return member
        self.seated += 1
        self.on_seats(self)
        self.state.add_player(pid)
        if initial:
            self.state.set_player(pid, initial)
        new_host = self.host is None
        if new_host:
            self.host = pid
        self._welcome(member, resumed=False)
        self._broadcast(m.join(pid), exclude=member)
        if new_host:
            self._broadcast(m.host(pid))
        self.ticks.wake()
        return member

    def _run_on_join(self, pid: str, spectator: bool) -> dict[str, Any]:
        """``on_join``: its JoinRefused refuses the join, any other failure refuses it with
        1011 (a logic bug must not crash the endpoint). Returns the player's first state."""
        try:
            initial = self.logic.on_join(pid, spectator)
            if initial is None or spectator:
                return {}
            if not isinstance(initial, dict):
                raise TypeError(f"on_join returned {type(initial).__name__}, not a dict")
            state = apply_patch({}, initial)
            if encoded_size(state) > self.limits.max_player_bytes:
                raise StateTooLarge(f"initial state over {self.limits.max_player_bytes} bytes")
            return state
        except JoinRefused:
            raise
        except Exception:
            log.exception("room %s: on_join failed", self.id)
            raise JoinRefused("the room could not admit the player", CloseCode.INTERNAL) from None

    def reattach(self, conn: Connection, member: Member, by_token: bool) -> None:
        """A connection takes over a place: a resume inside the grace, or a takeover (4010)."""
        old = member.conn
        if old is not None:
            carried = old.outbox.take_reliable()
            member.conn = None
            old.close(CloseCode.REPLACED, "replaced by a newer connection")
            came_back = False
        else:
            carried = list(member.gap or ())
            self._end_grace(member)
            came_back = True
        member.conn = conn
        conn.member = member
        # A seat coming back into a room without a host takes the role before its welcome,
        # which must already name it (contract section 5); the `host` broadcast stays last.
        takes_host = self.host is None and not member.spectator
        if takes_host:
            self.host = member.pid
        self._welcome(member, resumed=by_token or not member.spectator)
        for wire in carried:
            conn.push_reliable(wire)
        self._send_snap(conn)
        if member.spectator:
            return
        if came_back:
            self._broadcast(m.back(member.pid), exclude=member)
        if takes_host:
            self._broadcast(m.host(member.pid))

    def _send_snap(self, conn: Connection) -> None:
        """The current state for a new connection: the last frame when it is current, else
        the next tick's (a join already announced must not be missing from the snap)."""
        if self.state.dirty:
            self._want_snap.append(conn)
            self.ticks.wake()
        else:
            conn.push_state(self.state.last_frame)

    def _welcome(self, member: Member, resumed: bool) -> None:
        conn = member.conn
        assert conn is not None
        member.resume_token = self.tokens.issue(self.id, member.pid, member.resume_token)
        welcome = m.welcome(
            member.pid,
            self.id,
            self.state.last_frame.tick,
            self.options.tick_rate,
            self.host,
            member.resume_token,
            member.spectator,
            resumed,
            now_ms(),
        )
        conn.push_reliable(Wire(welcome))

    # Departures --------------------------------------------------------------------------

    def connection_ended(self, conn: Connection, reason: LeaveReason | None) -> None:
        """The connection is gone: a drop (``reason`` None) keeps the place for the grace."""
        member = conn.member
        if member is None or member.conn is not conn or self.members.get(member.pid) is not member:
            return
        if reason is None:
            self._drop(member)
        else:
            self.remove(member, reason)

    def leave(self, member: Member) -> None:
        self.remove(member, LeaveReason.LEFT)

    def kick(self, pid: str) -> bool:
        member = self.members.get(pid)
        if member is None:
            return False
        conn = member.conn
        self.remove(member, LeaveReason.KICKED)
        if conn is not None:
            conn.close(CloseCode.KICKED, "kicked")
        return True

    def remove(self, member: Member, reason: LeaveReason) -> None:
        """The member gives up its place for good."""
        if self.members.get(member.pid) is not member:
            return
        del self.members[member.pid]
        self._forget(member)
        if member.spectator:
            self.spectators -= 1
        else:
            self.seated -= 1
            self.on_seats(self)
            self.state.remove_player(member.pid)
            self.ticks.wake()
            self._broadcast(m.leave(member.pid, reason.value), exclude=member)
            try:
                self.logic.on_leave(member.pid, reason.value)
            except Exception:
                log.exception("room %s: on_leave failed", self.id)
            if self.host == member.pid:
                self._set_host(self._next_host())
        if not self.members:
            self._arm_idle()

    def _drop(self, member: Member) -> None:
        member.conn = None
        if self.limits.resume_grace <= 0:
            self.remove(member, LeaveReason.TIMEOUT)
            return
        member.gap = deque()
        member.gap_bytes = 0
        loop = asyncio.get_running_loop()
        member.grace = loop.call_later(self.limits.resume_grace, self._grace_over, member)
        if member.spectator:
            return
        self._broadcast(m.away(member.pid), exclude=member)
        if self.host == member.pid:
            self._set_host(self._next_host())

    def _grace_over(self, member: Member) -> None:
        member.grace = None
        if member.conn is None:
            self.remove(member, LeaveReason.TIMEOUT)

    def _end_grace(self, member: Member) -> None:
        if member.grace is not None:
            member.grace.cancel()
            member.grace = None
        member.gap = None
        member.gap_bytes = 0

    def _forget(self, member: Member) -> None:
        self._end_grace(member)
        self.tokens.revoke(member.resume_token)

    # Host --------------------------------------------------------------------------------

    def _next_host(self) -> str | None:
        candidates = [x for x in self.members.values() if not x.spectator and x.conn is not None]
        return min(candidates, key=lambda x: x.order).pid if candidates else None

    def _set_host(self, pid: str | None) -> None:
        if pid != self.host:
            self.host = pid
            self._broadcast(m.host(pid))

    # Messages from members ---------------------------------------------------------------

    def receive_input(self, member: Member, message: Input) -> None:
        """Checks made on receipt; the input itself is applied at the next tick."""
        conn = member.conn
        assert conn is not None
        if member.spectator:
            conn.send_error(ErrorCode.SPECTATOR, "spectators cannot send input", message.seq)
        elif message.seq <= member.last_seq:
            conn.send_error(ErrorCode.STALE, f"seq must be above {member.last_seq}", message.seq)
        elif message.room is not None and self.host != member.pid:
            conn.send_error(ErrorCode.NOT_HOST, "only the host may patch the room", message.seq)
        else:
            member.last_seq = message.seq
            self._inputs.append((member, message))
            self.ticks.wake()

    def receive_event(self, member: Member, message: Event) -> None:
        try:
            relay = self.logic.on_event(member.pid, message.d, message.to)
        except Exception:
            log.exception("room %s: on_event failed", self.id)
            return
        if relay:
            self.send_event(message.d, message.to, sender=member)

    # The tick ----------------------------------------------------------------------------

    def _busy(self) -> bool:
        return (
            bool(self._inputs)
            or bool(self._want_snap)
            or self.state.dirty
            or not self.logic.passive
        )

    def _step(self, tick: int, dt: float) -> None:
        inputs, self._inputs = self._inputs, []
        for member, message in inputs:
            if self.members.get(member.pid) is member:
                self._apply(member, message)
        if not self.logic.passive:
            try:
                self.logic.on_tick(tick, dt)
            except Exception:
                log.exception("room %s: on_tick failed", self.id)
        frame = self.state.publish(tick)
        waiting, self._want_snap = self._want_snap, []
        if frame is None:
            for conn in waiting:  # nothing changed after all: the last frame is current
                member = conn.member
                if (
                    member is not None
                    and member.conn is conn
                    and self.members.get(member.pid) is member
                ):
                    conn.push_state(self.state.last_frame)
            return
        for member in self.members.values():
            conn = member.conn
            if conn is not None:
                conn.push_state(frame)

    def _apply(self, member: Member, message: Input) -> None:
        """Run the logic's ``on_input``; a refusal leaves every state and the ack untouched
        (the player states it changed, whoever's, and the room state)."""
        pid = member.pid
        state = self.state
        before_room = state.room
        self._journal = journal = {}
        try:
            self.logic.on_input(pid, message.d, message.room)
        except StateTooLarge as exc:
            self._undo(journal, before_room)
            self._error(member, ErrorCode.TOO_LARGE, str(exc), message.seq)
        except InputRefused as exc:
            self._undo(journal, before_room)
            self._error(member, ErrorCode.BAD_MESSAGE, str(exc) or "input refused", message.seq)
        except Exception:
            log.exception("room %s: on_input failed", self.id)
            self._undo(journal, before_room)
            self._error(member, ErrorCode.BAD_MESSAGE, "input refused by the room", message.seq)
        else:
            state.ack(pid, message.seq)
            return
        finally:
            self._journal = None
        # A refused seq does not count for the stale check ("received and not refused",
        # section 2): unless a later input of this player is pending, the bar is its ack.
        if member.last_seq == message.seq:
            member.last_seq = state.acks.get(pid, 0)

    def _undo(self, journal: dict[str, Any], room: Any) -> None:
        players = self.state.players
        for pid, player in journal.items():
            if pid in players:
                players[pid] = player
        self.state.room = room

    def _remember(self, pid: str) -> None:
        """Inside ``on_input``: keep the player's state as it was, for an undo."""
        journal = self._journal
        if journal is not None and pid not in journal and pid in self.state.players:
            journal[pid] = self.state.players[pid]

    def _error(self, member: Member, code: ErrorCode, msg: str, ref: int | str | None) -> None:
        if member.conn is not None:
            member.conn.send_error(code, msg, ref)

    # What room logic may call ------------------------------------------------------------

    @property
    def players(self) -> dict[str, Any]:
        """Current player states by pid (read-only: change them through the methods below)."""
        return self.state.players

    @property
    def room_state(self) -> Any:
        return self.state.room

    @property
    def tick(self) -> int:
        return self.ticks.last_tick

    def apply_input(self, pid: str, d: dict[str, Any], room: dict[str, Any] | None) -> None:
        """Merge ``d`` into the player's state and ``room`` into the room state, whole or not."""
        new_player = self.state.patched_player(pid, d)
        new_room = self.state.patched_room(room) if room is not None else None
        self._remember(pid)
        self.state.set_player(pid, new_player)
        if new_room is not None:
            self.state.set_room(new_room)

    def patch_player(self, pid: str, patch: dict[str, Any]) -> None:
        new_player = self.state.patched_player(pid, patch)
        self._remember(pid)
        self.state.set_player(pid, new_player)

    def patch_room(self, patch: dict[str, Any]) -> None:
        self.state.set_room(self.state.patched_room(patch))

    def send_event(
        self, d: Any, to: Iterable[str] | None = None, sender: Member | None = None
    ) -> None:
        """Relay an event now (``from`` is the sender's pid, or null for the server)."""
        wire = Wire(m.event(sender.pid if sender else None, d))
        if to is None:
            self._fan_out(wire, (x for x in self.members.values() if x is not sender))
        else:
            members = self.members
            self._fan_out(wire, (members[pid] for pid in dict.fromkeys(to) if pid in members))

    # Reliable fan-out --------------------------------------------------------------------

    def _broadcast(self, message: dict[str, Any], exclude: Member | None = None) -> None:
        self._fan_out(Wire(message), (x for x in self.members.values() if x is not exclude))

    def _fan_out(self, wire: Wire, members: Iterable[Member]) -> None:
        """Deliver to connected members now and to away ones' gaps; a gap overflow ends a seat."""
        overflowed: list[Member] = []
        for member in list(members):
            conn = member.conn
            if conn is not None:
                conn.push_reliable(wire)
            elif member.gap is not None and not self._keep_for_gap(member, wire):
                overflowed.append(member)
        for member in overflowed:
            self.remove(member, LeaveReason.TIMEOUT)

    def _keep_for_gap(self, member: Member, wire: Wire) -> bool:
        gap = member.gap
        assert gap is not None
        size = wire.size
        if len(gap) >= self.limits.gap_messages or member.gap_bytes + size > self.limits.gap_bytes:
            return False
        gap.append(wire)
        member.gap_bytes += size
        return True

    # Idle disposal -----------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle is None and not self.closed:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.limits.idle_timeout, self._idle_over)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_over(self) -> None:
        self._idle = None
        if not self.members and not self.closed:
            self._on_empty(self)
