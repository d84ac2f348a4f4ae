"""A room: the composition of its roster, host role, resume grace, inputs, state and tick.

Each part does one job in its own module (``members``, ``host``, ``grace``, ``inputs``,
``fanout``, ``state``, ``tick``); the room decides what happens when a member joins, comes
back, drops or leaves, and what its logic may do. It reaches members only through their
``MemberLink`` and time only through its ``Clock``, so it runs without a socket or a loop.

Everything runs on the event loop between awaits, so a room needs no locks: a join, a drop,
an input or a tick each happens whole. Inputs wait for the next tick; events and presence
go out at once as reliable messages, encoded once for all who receive them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any

import tickrelay.protocol.messages as m
from tickrelay.protocol import CloseCode, ErrorCode, Event, LeaveReason, apply_patch, now_ms
from tickrelay.server import fanout
from tickrelay.server import logic as logic_registry
from tickrelay.server.clock import Clock, Countdown, LoopClock
from tickrelay.server.grace import ResumeGrace
from tickrelay.server.host import HostRole
from tickrelay.server.inputs import InputQueue
from tickrelay.server.logic import JoinRefused, RoomLogic
from tickrelay.server.members import AWAY, CONNECTED, Member, Roster, SeatRefused
from tickrelay.server.metrics import TickStats
from tickrelay.server.refusal import JoinRefusal
from tickrelay.server.room_options import RoomLimits, RoomOptions
from tickrelay.server.state import RoomState, StateTooLarge, encoded_size
from tickrelay.server.tick import Phase, TickLoop
from tickrelay.server.wire import StateFrame, Wire

if TYPE_CHECKING:
    from tickrelay.server.links import MemberLink
    from tickrelay.server.tokens import ResumeTokens

__all__ = ["Member", "Room", "RoomLimits", "RoomOptions", "RoomStatus", "SeatRefused"]

log = logging.getLogger("tickrelay.room")

RESUME_FAILED = "unknown or expired resume token"


class RoomStatus(Enum):
    OPEN = "open"
    CLOSED = "closed"  # disposed: members closed, tick stopped


class Room:
    """One game room; implements ``RoomLink`` for the connections of its members."""

    def __init__(
        self,
        room_id: str,
        options: RoomOptions,
        limits: RoomLimits,
        tokens: ResumeTokens,
        tick_stats: TickStats,
        on_empty: Callable[[Room], None],
        clock: Clock | None = None,
        tick_phase: Phase | None = None,
    ) -> None:
        logic_cls = logic_registry.get(options.logic)
        if logic_cls is None:
            raise ValueError(f"unknown logic {options.logic!r}")
        clock = clock or LoopClock()
        self.id = room_id
        self.options = options
        self.limits = limits
        self.tokens = tokens
        self.status = RoomStatus.OPEN
        self.roster = Roster(options.max_players, options.max_spectators)
        self.host = HostRole()
        self.state = RoomState(limits.max_player_bytes, limits.max_room_bytes)
        self.grace = ResumeGrace(clock, limits, self._grace_over)
        self._keep = self.grace.keep
        # Members whose first snap waits for the next tick (see _send_snap).
        self._want_snap: list[tuple[Member, MemberLink]] = []
        # After a takeover: members whose worker should adopt them back; nobody was told
        # they were away, so an adoption says nothing either (see ``settle``).
        self.unannounced: set[str] = set()
        self._on_empty = on_empty
        # Told whenever `seated` changes: the registry keeps its matchmaking index with it.
        self.on_seats: Callable[[Room], None] = _no_seat_watcher
        # Told whenever a member, token or the host changes: a cluster owner saves the
        # roster then (one process has nothing to save).
        self.on_roster: Callable[[Room], None] = _no_seat_watcher
        self._idle = Countdown(clock, limits.idle_timeout, self._idle_over)
        self.ticks = TickLoop(
            options.tick_rate, self._step, self._busy, tick_stats, clock, tick_phase
        )
        self.inputs = InputQueue(self.state, room_id, self.host, self.ticks.input_arrived)
        # RoomLink.receive_input is the queue's own check: one call per input, no relay.
        self.receive_input = self.inputs.receive
        self.logic: RoomLogic = logic_cls(self)

    @property
    def seated(self) -> int:
        return self.roster.seated

    @property
    def spectators(self) -> int:
        return self.roster.spectators

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.logic.on_create(dict(self.options.meta))
        self.ticks.start()
        self._idle.arm()

    async def close(self, code: CloseCode = CloseCode.NO_ROOM, reason: str = "room closed") -> None:
        """Dispose: close every member's link with ``code`` and stop the tick."""
        if self.status is RoomStatus.CLOSED:
            return
        self.status = RoomStatus.CLOSED
        self._idle.disarm()
        links = list(self.roster.links.values())
        for member in self.roster.members.values():
            self._forget(member)
        self.roster.clear()
        for link in links:
            link.close(code, reason)
        await self.ticks.stop()
        try:
            self.logic.on_dispose()
        except Exception:
            log.exception("room %s: on_dispose failed", self.id)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "players": self.roster.seated,
            "spectators": self.roster.spectators,
            "max_players": self.options.max_players,
            "max_spectators": self.options.max_spectators,
            "tick_rate": self.options.tick_rate,
            "tick": self.ticks.current,
            "private": self.options.private,
            "logic": self.options.logic,
            "meta": self.options.meta,
        }

    def describe_members(self) -> list[dict[str, Any]]:
        return [member.describe() for member in self.roster.members.values()]

    # Joining -----------------------------------------------------------------------------

    def join(
        self,
        link: MemberLink,
        pid: str | None,
        spectator: bool,
        resume_token: str | None = None,
        spectate_only: bool = False,
    ) -> Member:
        """Take a place: resume by token, take over the same pid's place (4010 to the old
        link), or a new seat or spectator place. ``pid`` None is an anonymous player.

        Raises a JoinRefusal in the contract's order: 4012 (4001 for another player's
        token), 4003 (a spectate-only token taking over a seat), then 4009 or the logic's.
        """
        if self.status is RoomStatus.CLOSED:
            raise JoinRefusal(CloseCode.NO_ROOM, "no such room")
        resumed = self._resumed(resume_token, pid) if resume_token is not None else None
        if pid is None:
            pid = secrets.token_hex(6)
        existing = resumed if resumed is not None else self.roster.members.get(pid)
        if existing is None:
            return self._admit(link, pid, spectator)
        if spectate_only and not existing.spectator:
            raise JoinRefusal(CloseCode.FORBIDDEN, "a spectate-only token cannot take over a seat")
        self._reattach(link, existing, by_token=resumed is not None)
        return existing

    def _resumed(self, token: str, pid: str | None) -> Member:
        found = self.tokens.lookup(token)
        if found is None or found[0] != self.id:
            raise JoinRefusal(CloseCode.RESUME_FAILED, RESUME_FAILED)
        member = self.roster.members.get(found[1])
        if member is None or member.resume_token != token:
            raise JoinRefusal(CloseCode.RESUME_FAILED, RESUME_FAILED)
        if pid is not None and pid != member.pid:
            raise JoinRefusal(CloseCode.UNAUTHORIZED, "token does not match the resumed player")
        return member

    def _admit(self, link: MemberLink, pid: str, spectator: bool) -> Member:
        """Seat a new player (or place a spectator). ``on_join`` may refuse it."""
        self.roster.check_place(spectator)
        initial = self._run_on_join(pid, spectator)
        member = self.roster.add(pid, spectator, link)
        self._idle.disarm()
        self.on_roster(self)
        if spectator:
            self._welcome(member, link, resumed=False)
            self._send_snap(member, link)
            return member
        self.state.add_player(pid)
        self.on_seats(self)
        if initial:
            self.state.set_player(pid, initial)
        new_host = self.host.claim(member)
        self._welcome(member, link, resumed=False)
        self._broadcast(m.join(pid), exclude=pid)
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

    def _reattach(self, link: MemberLink, member: Member, by_token: bool) -> None:
        """A link takes over a place: a resume inside the grace, or a takeover (4010)."""
        old = member.link
        if member.state is CONNECTED and old is not None:
            carried = old.take_reliable()
            old.close(CloseCode.REPLACED, "replaced by a newer connection")
        else:
            carried = self.grace.end(member)
        came_back = member.state is AWAY
        self.roster.connect(member, link)
        self.on_roster(self)
        # A seat coming back into a room without a host takes the role before its welcome,
        # which must already name it (contract section 5); the `host` broadcast stays last.
        took_host = self.host.claim(member)
        self._welcome(member, link, resumed=by_token or not member.spectator)
        for wire in carried:
            link.push_reliable(wire)
        self._send_snap(member, link)
        if member.spectator:
            return
        if came_back:
            self._broadcast(m.back(member.pid), exclude=member.pid)
        if took_host:
            self._broadcast(m.host(member.pid))

    def _send_snap(self, member: Member, link: MemberLink) -> None:
        """The current state for a new link: the last frame when it is current, else the
        next tick's (a join already announced must not be missing from the snap)."""
        if self.state.dirty:
            self._want_snap.append((member, link))
            self.ticks.wake()
        else:
            link.push_state(self.state.last_frame)

    def _welcome(self, member: Member, link: MemberLink, resumed: bool) -> None:
        member.resume_token = self.tokens.issue(self.id, member.pid, member.resume_token)
        welcome = m.welcome(
            member.pid,
            self.id,
            self.state.last_frame.tick,
            self.options.tick_rate,
            self.host.pid,
            member.resume_token,
            member.spectator,
            resumed,
            now_ms(),
        )
        link.push_reliable(Wire(welcome))

    # After a takeover (a room rebuilt from its checkpoint) ---------------------------------

    def disarm_idle(self) -> None:
        self._idle.disarm()

    def adopt(self, link: MemberLink, pid: str) -> Member:
        """A member still connected to a live worker takes its place back, silently unless
        it was announced away: no welcome (its token is unchanged), just the state."""
        member = self.roster.members.get(pid)
        if member is None or member.state is not AWAY or self.status is RoomStatus.CLOSED:
            raise JoinRefusal(CloseCode.RESUME_FAILED, RESUME_FAILED)
        carried = self.grace.end(member)
        announced = pid not in self.unannounced
        self.unannounced.discard(pid)
        self.roster.connect(member, link)
        self.on_roster(self)
        took_host = self.host.claim(member)
        for wire in carried:
            link.push_reliable(wire)
        self._send_snap(member, link)
        if not member.spectator:
            if announced:
                self._broadcast(m.back(pid), exclude=pid)
            if took_host:
                self._broadcast(m.host(pid))
        return member

    def settle(self) -> None:
        """The adoptions are in: members nobody adopted are away (their worker died with
        the owner, or left), and the host role passes on if its holder is one of them."""
        quiet, self.unannounced = self.unannounced, set()
        self.on_roster(self)
        for pid in quiet:
            member = self.roster.members.get(pid)
            if member is not None and member.state is AWAY and not member.spectator:
                self._broadcast(m.away(pid), exclude=pid)
        holder = self.roster.members.get(self.host.pid) if self.host.pid else None
        if holder is None or holder.state is AWAY:
            self._pass_host()

    # Departures --------------------------------------------------------------------------

    def connection_ended(
        self, member: Member, link: MemberLink, reason: LeaveReason | None
    ) -> None:
        """The link is gone: a drop (``reason`` None) keeps the place for the grace."""
        if member.link is not link or not self.roster.holds(member):
            return
        if reason is None:
            self._drop(member)
        else:
            self.remove(member, reason)

    def leave(self, member: Member) -> None:
        self.remove(member, LeaveReason.LEFT)

    def kick(self, pid: str) -> bool:
        member = self.roster.members.get(pid)
        if member is None:
            return False
        link = member.link
        self.remove(member, LeaveReason.KICKED)
        if link is not None:
            link.close(CloseCode.KICKED, "kicked")
        return True

    def remove(self, member: Member, reason: LeaveReason) -> None:
        """The member gives up its place for good."""
        if not self.roster.holds(member):
            return
        self.roster.remove(member)
        self._forget(member)
        self.on_roster(self)
        if not member.spectator:
            self.state.remove_player(member.pid)
            self.on_seats(self)
            self.ticks.wake()
            self._broadcast(m.leave(member.pid, reason.value), exclude=member.pid)
            try:
                self.logic.on_leave(member.pid, reason.value)
            except Exception:
                log.exception("room %s: on_leave failed", self.id)
            if self.host.pid == member.pid:
                self._pass_host()
        if not self.roster:
            self._idle.arm()

    def _drop(self, member: Member) -> None:
        self.roster.disconnect(member)
        self.on_roster(self)
        if not self.grace.enabled:
            self.remove(member, LeaveReason.TIMEOUT)
            return
        self.grace.start(member)
        if member.spectator:
            return
        self._broadcast(m.away(member.pid), exclude=member.pid)
        if self.host.pid == member.pid:
            self._pass_host()

    def _grace_over(self, member: Member) -> None:
        if member.state is AWAY:
            self.remove(member, LeaveReason.TIMEOUT)

    def _forget(self, member: Member) -> None:
        self.grace.end(member)
        self.tokens.revoke(member.resume_token)

    def _pass_host(self) -> None:
        if self.host.pass_on(self.roster.members.values()):
            self._broadcast(m.host(self.host.pid))

    # Messages from members ---------------------------------------------------------------

    def receive_event(self, member: Member, message: Event) -> None:
        try:
            relay = self.logic.on_event(member.pid, message.d, message.to)
        except Exception:
            log.exception("room %s: on_event failed", self.id)
            return
        if relay:
            self.send_event(message.d, message.to, sender=member)

    def _error(self, member: Member, code: ErrorCode, msg: str, ref: int | str | None) -> None:
        if member.link is not None:
            member.link.send_error(code, msg, ref)

    # The tick ----------------------------------------------------------------------------

    def _busy(self) -> bool:
        return (
            bool(self.inputs) or bool(self._want_snap) or self.state.dirty or not self.logic.passive
        )

    def _step(self, tick: int, dt: float) -> StateFrame | None:
        self.inputs.apply_all(self.logic, self.roster, self._error)
        if not self.logic.passive:
            try:
                self.logic.on_tick(tick, dt)
            except Exception:
                log.exception("room %s: on_tick failed", self.id)
        frame = self.state.publish(tick)
        waiting, self._want_snap = self._want_snap, []
        if frame is None:
            for member, link in waiting:  # nothing changed after all: the last frame is current
                if member.link is link and self.roster.holds(member):
                    link.push_state(self.state.last_frame)
            return None
        for link in self.roster.links.values():
            link.push_state(frame)
        return frame  # for the tick's figures (its size)

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
        self.inputs.remember(pid)
        self.state.set_player(pid, new_player)
        if new_room is not None:
            self.state.set_room(new_room)

    def patch_player(self, pid: str, patch: dict[str, Any]) -> None:
        new_player = self.state.patched_player(pid, patch)
        self.inputs.remember(pid)
        self.state.set_player(pid, new_player)

    def patch_room(self, patch: dict[str, Any]) -> None:
        self.state.set_room(self.state.patched_room(patch))

    def send_event(
        self, d: Any, to: Iterable[str] | None = None, sender: Member | None = None
    ) -> None:
        """Relay an event now (``from`` is the sender's pid, or null for the server)."""
        wire = Wire(m.event(sender.pid if sender else None, d))
        if to is None:
            exclude = sender.pid if sender is not None else None
            self._end_overflowed(fanout.to_all(self.roster, wire, self._keep, exclude))
        else:
            self._end_overflowed(fanout.to_some(self.roster, wire, to, self._keep))

    # Reliable fan-out --------------------------------------------------------------------

    def _broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        self._end_overflowed(fanout.to_all(self.roster, Wire(message), self._keep, exclude))

    def _end_overflowed(self, overflowed: list[Member]) -> None:
        """Members whose gap overflowed could not resume without a hole: their place ends."""
        for member in overflowed:
            self.remove(member, LeaveReason.TIMEOUT)

    # Idle disposal -----------------------------------------------------------------------

    def _idle_over(self) -> None:
        if not self.roster and self.status is RoomStatus.OPEN:
            self._on_empty(self)


def _no_seat_watcher(room: Room) -> None:
    """The default ``on_seats`` and ``on_roster``: nothing to keep or save."""
