"""Small room logics that each exercise one hook, for tests/test_logic.py.

The test server imports this module (``logic_modules=["tests.logic_fixtures"]``; the server
runs with the repository root as its working directory). Some fixtures fail on purpose with
DeliberateFailure; the room logs hook failures with their traceback, which the harness treats
as a bug, so a log filter below keeps those records (and their message) but drops the
traceback of deliberate failures only.
"""

from __future__ import annotations

import logging
from typing import Any

from tickrelay.protocol import CloseCode
from tickrelay.server.logic import InputRefused, JoinRefused, RelayLogic, register


class DeliberateFailure(Exception):
    """A failure a fixture raises on purpose, to test how the room survives it."""


class _DropDeliberateTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DeliberateFailure):
            record.msg = f"{record.msg} (deliberate test failure: {exc})"
            record.exc_info = None
            record.exc_text = None
        return True


for _name in ("tickrelay.room", "tickrelay.registry"):
    logging.getLogger(_name).addFilter(_DropDeliberateTracebacks())


@register
class CrashOnCreate(RelayLogic):
    """A buggy on_create: the room cannot start."""

    name = "crash_on_create"

    def on_create(self, options: dict[str, Any]) -> None:
        raise DeliberateFailure("on_create bug")


@register
class OneSeat(RelayLogic):
    """Admits one seated player; refuses the next ones with 4009 and its own reason."""

    name = "one_seat"

    def on_join(self, pid: str, spectator: bool) -> None:
        if not spectator and self.room.players:
            raise JoinRefused("table for one", CloseCode.ROOM_FULL)


@register
class CrashOnSecondJoin(RelayLogic):
    """A buggy on_join: the second seated player makes it raise."""

    name = "crash_on_second_join"

    def on_join(self, pid: str, spectator: bool) -> None:
        if not spectator and self.room.players:
            raise DeliberateFailure("on_join bug")


@register
class Spawner(RelayLogic):
    """Gives every player a first state from on_join."""

    name = "spawner"

    def on_create(self, options: dict[str, Any]) -> None:
        self.joined = 0

    def on_join(self, pid: str, spectator: bool) -> dict[str, Any]:
        self.joined += 1
        return {"hp": 100, "slot": self.joined}


@register
class NoSecrets(RelayLogic):
    """Keeps events with a ``secret`` key from being relayed."""

    name = "no_secrets"

    def on_event(self, pid: str, d: Any, to: list[str] | None) -> bool:
        return not (isinstance(d, dict) and "secret" in d)


@register
class Clock(RelayLogic):
    """Not passive: counts its ticks in the room state, with no input at all."""

    name = "clock"
    passive = False

    def on_tick(self, tick: int, dt: float) -> None:
        ticks = self.room.room_state.get("ticks", 0)
        self.room.patch_room({"ticks": ticks + 1, "tick": tick})


@register
class Ledger(RelayLogic):
    """Writes every departure and its reason into the room state."""

    name = "ledger"

    def on_leave(self, pid: str, reason: str) -> None:
        self.room.patch_room({"left": {pid: reason}})


@register
class Fragile(RelayLogic):
    """Relays, except for inputs that change states and then fail.

    ``{"boom": true}``: patches the sender, every other player and the room, then raises
    DeliberateFailure. ``{"refuse": true}``: patches the sender, then raises InputRefused.
    """

    name = "fragile"

    def on_input(self, pid: str, d: dict[str, Any], room: dict[str, Any] | None) -> None:
        if d.get("boom"):
            for other in list(self.room.players):
                self.room.patch_player(other, {"half": True})
            self.room.patch_room({"half": True})
            raise DeliberateFailure("on_input bug")
        if d.get("refuse"):
            self.room.patch_player(pid, {"half": True})
            raise InputRefused("refused on purpose")
        super().on_input(pid, d, room)
