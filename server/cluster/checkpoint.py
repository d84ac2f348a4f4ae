"""What a room's owner saves so that another worker can take the room over (sans-I/O).

Two parts, written at different rates. The *roster* (options, the clock of tick 0, host,
and per member its pid, seat or spectator place, join order, resume token, the worker it
is connected to, or the wall-clock end of its resume grace) changes rarely and must never
be lost: it is saved on every change. The *state* (the last published frame: tick,
players, room, acks; and what the room logic saves of itself) changes every tick: it is
saved at most once a checkpoint period while it changes.

A takeover rebuilds the room from both: every member starts away, members connected to
a live worker are adopted back by that worker without a word to the others, and the
rest are announced ``away`` and may resume with their tokens within the grace. The state
comes back as the last checkpoint: what happened since is what a failover loses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from tickrelay.protocol import LeaveReason
from tickrelay.server.members import AWAY
from tickrelay.server.room_options import RoomOptions

if TYPE_CHECKING:
    from tickrelay.server.room import Room

FORMAT = 1

log = logging.getLogger("tickrelay.cluster")


class BadCheckpoint(Exception):
    """A checkpoint this version cannot read (another format, or damaged)."""


@dataclass(frozen=True, slots=True)
class SavedMember:
    pid: str
    spectator: bool
    order: int
    token: str
    worker: str | None  # where it was connected; None: away
    grace_ends: float  # wall-clock seconds; 0.0 while connected


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A room as its owner last saved it."""

    options: RoomOptions
    t0: float  # wall-clock seconds of tick 0: tick numbers carry on after a takeover
    host: str | None
    members: list[SavedMember]
    tick: int = 0
    players: dict[str, Any] | None = None
    room: Any = None
    acks: dict[str, int] | None = None
    logic: Any = None


# Saving ----------------------------------------------------------------------------------


def pack_roster(room: Room, worker_of: dict[str, str], leaving: bool = False) -> bytes:
    """The roster part. ``worker_of`` maps a connected member's pid to its worker;
    ``leaving`` (a drain) saves every member connected here as away."""
    now = time.time()
    members = []
    for member in room.roster.members.values():
        worker = None if member.state is AWAY else worker_of.get(member.pid)
        left = room.grace.remaining(member)
        ends = now + left if left else 0.0
        if worker is None and not ends:
            ends = now + room.limits.resume_grace
        members.append(
            [member.pid, member.spectator, member.order, member.resume_token, worker, ends]
        )
    options = room.options
    return _pack(
        {
            "v": FORMAT,
            "options": [
                options.tick_rate,
                options.max_players,
                options.max_spectators,
                options.private,
                options.logic,
                options.meta,
            ],
            "t0": now - room.ticks.elapsed,
            "host": room.host.pid,
            "members": members,
        }
    )


def pack_state(room: Room, logic_saved: Any) -> bytes:
    """The state part: the last published frame, exactly as clients received it."""
    frame = room.state.last_frame
    return _pack(
        {
            "v": FORMAT,
            "tick": frame.tick,
            "players": frame.players,
            "room": frame.room,
            "acks": frame.acks,
            "logic": logic_saved,
        }
    )


# Taking over ----------------------------------------------------------------------------


def restore(room: Room, saved: Checkpoint) -> None:
    """Rebuild a new, started room from its checkpoint. Every member starts away; those
    connected at the checkpoint stay unannounced until adopted (their worker is live) or
    ``Room.settle`` (it is not); a member whose grace ran out meanwhile loses its place."""
    now = time.time()
    acks = saved.acks or {}
    expired = []
    for entry in saved.members:
        member = room.roster.restore(entry.pid, entry.spectator, entry.order)
        member.resume_token = entry.token
        member.last_seq = acks.get(entry.pid, 0)
        room.tokens.restore(entry.token, room.id, entry.pid)
        grace = entry.grace_ends - now if entry.worker is None else room.limits.resume_grace
        if grace <= 0:
            expired.append(member)
            continue
        room.grace.start(member, grace)
        if entry.worker is not None:  # connected then: adopted, or announced at the settle
            room.unannounced.add(entry.pid)
    room.host.pid = saved.host
    players = {m.pid: (saved.players or {}).get(m.pid, {}) for m in saved.members
               if not m.spectator}  # fmt: skip
    room_state = saved.room if saved.room is not None else room.state.room
    seated_acks = {pid: acks.get(pid, 0) for pid in players}
    tick = room.ticks.carry_on(now - saved.t0, saved.tick)
    room.state.restore(tick, players, room_state, seated_acks)
    if room.roster:
        room.disarm_idle()
    try:
        room.logic.on_restore(saved.logic)
    except Exception:
        log.exception("room %s: on_restore failed", room.id)
    for member in expired:
        room.remove(member, LeaveReason.TIMEOUT)


# Loading ---------------------------------------------------------------------------------


def unpack(roster: bytes | None, state: bytes | None) -> Checkpoint:
    """Both parts as saved; raises BadCheckpoint when they cannot be read."""
    try:
        r = _unpack(roster) if roster is not None else _EMPTY_ROSTER
        s = _unpack(state) if state is not None else {}
        tick_rate, max_players, max_spectators, private, logic, meta = r["options"]
        return Checkpoint(
            options=RoomOptions(tick_rate, max_players, max_spectators, private, logic, meta),
            t0=float(r["t0"]),
            host=r["host"],
            members=[SavedMember(*entry) for entry in r["members"]],
            tick=int(s.get("tick", 0)),
            players=s.get("players"),
            room=s.get("room"),
            acks=s.get("acks"),
            logic=s.get("logic"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadCheckpoint(str(exc)) from None


_EMPTY_ROSTER: dict[str, Any] = {
    "options": [20, 16, 64, False, "relay", {}],
    "t0": 0.0,
    "host": None,
    "members": [],
}


def _pack(value: dict[str, Any]) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(packed: bytes) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError) as exc:
        raise BadCheckpoint(str(exc)) from None
    if not isinstance(value, dict) or value.get("v") != FORMAT:
        raise BadCheckpoint("unknown checkpoint format")
    return value
