"""Server-side room logic: the hook a game writes to own its rules, run inside the tick.

The default ``RelayLogic`` is the merge relay of the contract: a player's input patches its
own state and the host's ``room`` patch patches the room state. A game subclasses
``RoomLogic`` (or ``RelayLogic``), registers it under a name, and creates rooms with
``"logic": name``. Hooks run on the event loop inside the room's tick: they must be quick.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from tickrelay.protocol import CloseCode
from tickrelay.server.refusal import JoinRefusal

if TYPE_CHECKING:
    from tickrelay.server.room import Room


class JoinRefused(JoinRefusal):
    """Raised by ``on_join`` to turn a player away with a close code and a reason."""

    def __init__(self, reason: str, code: CloseCode = CloseCode.FORBIDDEN) -> None:
        super().__init__(code, reason)


class InputRefused(Exception):
    """Raised by ``on_input`` to refuse one input (answered with ``error`` ``bad_message``)."""


class RoomLogic:
    """Base class of room logic. Every hook has a harmless default.

    One instance per room, created with the room (``self.room``). Hooks run on the event
    loop, one at a time, so the logic needs no locks; they must be quick and must not block.
    What the logic may call on ``self.room``: ``players`` (read-only states by pid, in join
    order), ``room_state``, ``tick``, ``options`` (``options.tick_rate``, ``options.meta``),
    ``apply_input``, ``patch_player``, ``patch_room`` (merge patches: ``None`` deletes a key,
    states are replaced copy-on-write, never mutate them in place), ``send_event(d, to=None)``
    (``from`` null: the server speaks) and ``kick(pid)``.

    ``passive`` logic has nothing to do between inputs: its room may sleep until one arrives.
    Logic with its own simulation sets ``passive = False`` so ``on_tick`` runs every tick.

    Failures: an exception in ``on_input`` refuses that input (``error`` ``bad_message``),
    one in ``on_join`` refuses the join (close 1011); both are logged with their traceback.
    One in ``on_event``, ``on_tick`` or ``on_leave`` is logged and the room goes on.
    """

    name: ClassVar[str] = "base"
    passive: ClassVar[bool] = True

    def __init__(self, room: Room) -> None:
        self.room = room

    def on_create(self, options: dict[str, Any]) -> None:
        """Called once when the room is created, with its ``meta`` (client-controlled when
        the room comes from ``/matchmake``: validate it, never raise on it)."""

    def on_join(self, pid: str, spectator: bool) -> dict[str, Any] | None:
        """Called before a new player or spectator is admitted (not on a resume or a
        takeover); raise JoinRefused to refuse. A seated player's state starts as the dict
        returned (``{}`` when None), so the join's own snapshot already holds it."""
        return None

    def on_input(self, pid: str, d: dict[str, Any], room: dict[str, Any] | None) -> None:
        """Called at the tick for each input, in arrival order, before ``on_tick``.

        Raise InputRefused (or let any exception out) to refuse the input: every state
        change made during the call (any player's, the room's) is undone and the ack does
        not move. Events sent before the raise are not taken back: send them last.
        """

    def on_event(self, pid: str, d: Any, to: list[str] | None) -> bool:
        """Called when an event arrives (from a player or a spectator), at once, not at a
        tick; return False to keep it from being relayed."""
        return True

    def on_tick(self, tick: int, dt: float) -> None:
        """Called once per tick after the inputs were applied (only when not ``passive``).
        ``dt`` is the time since the previous tick: a late tick covers several periods."""

    def on_leave(self, pid: str, reason: str) -> None:
        """Called when a seated player gives up its seat for good (``left``, ``timeout``,
        ``kicked``, ``error``), after it was removed from ``players``. Not called for
        spectators, for drops inside the resume grace, or when the room is disposed."""

    def on_dispose(self) -> None:
        """Called when the room is disposed."""

    # Failover (a room shared through Redis survives the death of its worker) ------------

    def on_save(self) -> Any:
        """Return what the logic keeps outside the room state (MessagePack-able: dicts,
        lists, numbers, strings, bytes), to be saved with the room's checkpoint. Called
        at most once a checkpoint period (1 s) while the room changes, never per tick."""
        return None

    def on_restore(self, saved: Any) -> None:
        """Called when another worker takes the room over: ``on_create`` has already run
        with the room's meta, then the state came back from the checkpoint; ``saved`` is
        what ``on_save`` returned then (None if it never ran)."""


class RelayLogic(RoomLogic):
    """The merge relay: clients own their state; the host owns the room state."""

    name = "relay"

    def on_input(self, pid: str, d: dict[str, Any], room: dict[str, Any] | None) -> None:
        self.room.apply_input(pid, d, room)


_REGISTRY: dict[str, type[RoomLogic]] = {"relay": RelayLogic}


def register(cls: type[RoomLogic]) -> type[RoomLogic]:
    """Class decorator: make a logic available to rooms by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[RoomLogic] | None:
    return _REGISTRY.get(name)


def names() -> list[str]:
    return sorted(_REGISTRY)


def load_modules(modules: list[str]) -> None:
    """Import the configured modules so that their ``@register`` decorators run.

    The working directory is importable, as with ``uvicorn``: a game's logic module next to
    where the server is started is found without setting PYTHONPATH.
    """
    cwd = os.getcwd()
    if modules and cwd not in sys.path:
        sys.path.insert(0, cwd)
    for module in modules:
        importlib.import_module(module)
