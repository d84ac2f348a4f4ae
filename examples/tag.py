"""Tag: an authoritative game written as tickrelay room logic (registered as ``tag``).

The server owns the game. Clients only say where they want to go; the room moves everyone,
decides who is "it" and announces the tags. Run it with::

    tickrelay serve --logic-modules tickrelay.examples.tag

and create a room with ``POST /rooms {"id": "yard", "logic": "tag"}`` (admin token) or
``POST /matchmake {"logic": "tag"}``. See ``examples/README.md`` for the walk-through.

The rules, as the clients see them:

* **Input** ``{"dir": [dx, dy]}`` sets the sender's intent: the direction it runs in, clamped
  to unit length (``[0, 0]`` stands still, ``[0.5, 0]`` walks at half speed). Nothing else is
  accepted: an input with any other key (``x``, ``y``, ...) or with a ``room`` patch is refused
  whole with ``error`` ``bad_message``, so a client bug or a cheat is visible at once instead of
  being silently ignored.
* **Player state** (server-written): ``{"x", "y", "dir"}``. Spawns are fixed slots (the
  corners, then the centre), then positions drawn from ``meta.seed``: the same join order
  gives the same game.
* **Room state**: ``arena`` ``[w, h]``, ``speed``, ``radius``, ``it`` (a pid, absent in an
  empty room), ``tags`` (how many so far), ``scores`` (tags made, by pid) and ``cooldown``
  ``{"pid", "until"}``: the player who just tagged cannot be tagged back before tick
  ``until``.
* **Tags**: after moving everyone, "it" tags the nearest other player within ``radius``.
  The server announces it with an ``event`` from ``null``:
  ``{"type": "tag", "by": pid, "it": pid, "tick": n}``.
* **Leaving**: when "it" leaves, the earliest-joined remaining player becomes "it"
  (announced as ``{"type": "it", "it": pid, "was": pid}``).
* **Events**: ``{"type": "taunt", ...}`` is relayed like any event; every other event
  (``{"type": "cheat"}`` included) is dropped.
* **Joining**: a game created with ``meta.closed`` true refuses new players with ``4003``;
  spectators may always watch.

The simulation runs in fixed steps of one tick period: a late tick (``dt`` covering several
periods) runs several steps, so positions and tag ticks do not depend on the server's load.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from tickrelay.protocol import CloseCode
from tickrelay.server.logic import InputRefused, JoinRefused, RoomLogic, register

#: Spawn slots as fractions of the arena: the corners, then the centre.
SLOTS = ((0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9), (0.5, 0.5))
#: A late tick catches up at most this many seconds of simulation.
MAX_CATCH_UP = 1.0


def _number(value: Any, default: float, low: float, high: float) -> float:
    """``value`` when it is a number inside [low, high], else ``default``: meta may come from
    any client (``/matchmake``), so a bad value falls back instead of breaking the room."""
    if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    return default


@dataclass(frozen=True)
class TagConfig:
    """The game's settings, read from the room's ``meta``."""

    width: float = 100.0
    height: float = 100.0
    speed: float = 30.0  # arena units per second at full intent
    radius: float = 5.0  # how close "it" must come to tag
    cooldown: float = 2.0  # seconds before a tagger can be tagged back
    closed: bool = False
    seed: int = 0

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TagConfig:
        arena = meta.get("arena")
        width, height = cls.width, cls.height
        if isinstance(arena, list) and len(arena) == 2:
            width = _number(arena[0], width, 10, 10_000)
            height = _number(arena[1], height, 10, 10_000)
        seed = meta.get("seed")
        return cls(
            width=width,
            height=height,
            speed=_number(meta.get("speed"), cls.speed, 0.1, 10_000),
            radius=_number(meta.get("radius"), cls.radius, 0.1, 100_000),
            cooldown=_number(meta.get("cooldown"), cls.cooldown, 0, 60),
            closed=meta.get("closed") is True,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
        )


def read_intent(d: dict[str, Any]) -> list[float] | None:
    """The ``dir`` of an input, clamped to unit length; None when the input has none.

    Raises InputRefused for anything else: the client never writes its own state.
    """
    extra = sorted(key for key in d if key != "dir")
    if extra:
        raise InputRefused(f"tag inputs carry only 'dir', not {extra}")
    if "dir" not in d:
        return None
    direction = d["dir"]
    if not (
        isinstance(direction, list)
        and len(direction) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in direction)
    ):
        raise InputRefused("'dir' must be [dx, dy], two numbers")
    dx, dy = float(direction[0]), float(direction[1])
    length = math.hypot(dx, dy)
    if length > 1.0:
        dx, dy = dx / length, dy / length
    return [round(dx, 4), round(dy, 4)]


@register
class TagLogic(RoomLogic):
    """The tag game: authoritative movement, tagging, cooldowns, announcements."""

    name = "tag"
    passive = False  # the world moves between inputs: on_tick runs every tick

    def on_create(self, options: dict[str, Any]) -> None:
        self.config = TagConfig.from_meta(options)
        self.rate = self.room.options.tick_rate
        self.cooldown_ticks = math.ceil(self.config.cooldown * self.rate)
        self.spawns = 0
        self.rng = random.Random(self.config.seed)
        self.sim_tick = self.room.tick
        self.room.patch_room(
            {
                "arena": [self.config.width, self.config.height],
                "speed": self.config.speed,
                "radius": self.config.radius,
                "tags": 0,
                "scores": {},
            }
        )

    # Failover: what lives outside the room state travels with the checkpoint -----------

    def on_save(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"spawns": self.spawns, "rng": [version, list(internal), gauss]}

    def on_restore(self, saved: Any) -> None:
        self.sim_tick = self.room.tick  # the clock moved on while nobody owned the room
        if isinstance(saved, dict):
            self.spawns = int(saved.get("spawns", 0))
            version, internal, gauss = saved["rng"]
            self.rng.setstate((version, tuple(internal), gauss))

    # Seats ---------------------------------------------------------------------------------

    def on_join(self, pid: str, spectator: bool) -> dict[str, Any] | None:
        if spectator:
            return None  # anyone may watch
        if self.config.closed:
            raise JoinRefused("this game is closed", CloseCode.FORBIDDEN)
        patch: dict[str, Any] = {"scores": {pid: 0}}
        if self.room.room_state.get("it") is None:
            patch["it"] = pid
        self.room.patch_room(patch)
        x, y = self._spawn()
        return {"x": x, "y": y, "dir": [0, 0]}

    def _spawn(self) -> tuple[float, float]:
        width, height = self.config.width, self.config.height
        if self.spawns < len(SLOTS):
            fx, fy = SLOTS[self.spawns]
        else:
            fx, fy = self.rng.random(), self.rng.random()
        self.spawns += 1
        return round(fx * width, 3), round(fy * height, 3)

    def on_leave(self, pid: str, reason: str) -> None:
        patch: dict[str, Any] = {"scores": {pid: None}}
        if self.room.room_state.get("it") == pid:
            # players keeps join order, and the leaver is already gone from it.
            new_it = next(iter(self.room.players), None)
            patch["it"] = new_it
            patch["cooldown"] = None
            self.room.send_event({"type": "it", "it": new_it, "was": pid})
        self.room.patch_room(patch)

    # Messages ------------------------------------------------------------------------------

    def on_input(self, pid: str, d: dict[str, Any], room: dict[str, Any] | None) -> None:
        if room is not None:
            raise InputRefused("the room state belongs to the game")
        intent = read_intent(d)
        if intent is not None:
            self.room.patch_player(pid, {"dir": intent})

    def on_event(self, pid: str, d: Any, to: list[str] | None) -> bool:
        return isinstance(d, dict) and d.get("type") == "taunt"

    # The simulation ------------------------------------------------------------------------

    def on_tick(self, tick: int, dt: float) -> None:
        first = max(self.sim_tick + 1, tick - int(MAX_CATCH_UP * self.rate) + 1)
        for step_tick in range(first, tick + 1):
            self._move_everyone()
            self._tag(step_tick)
        self.sim_tick = tick

    def _move_everyone(self) -> None:
        step = self.config.speed / self.rate
        width, height = self.config.width, self.config.height
        for pid, state in self.room.players.items():
            dx, dy = state.get("dir", (0, 0))
            if dx == 0 and dy == 0:
                continue
            x = round(min(max(state["x"] + dx * step, 0.0), width), 3)
            y = round(min(max(state["y"] + dy * step, 0.0), height), 3)
            if x != state["x"] or y != state["y"]:
                self.room.patch_player(pid, {"x": x, "y": y})

    def _tag(self, tick: int) -> None:
        room_state = self.room.room_state
        players = self.room.players
        it = room_state.get("it")
        if it not in players:
            return
        cooldown = room_state.get("cooldown") or {}
        protected = cooldown.get("pid") if tick < cooldown.get("until", 0) else None
        hunter = players[it]
        best: tuple[float, str] | None = None
        for pid, state in players.items():
            if pid in (it, protected):
                continue
            distance = math.hypot(state["x"] - hunter["x"], state["y"] - hunter["y"])
            if distance <= self.config.radius and (best is None or distance < best[0]):
                best = (distance, pid)
        if best is None:
            return
        victim = best[1]
        scores = room_state.get("scores", {})
        self.room.patch_room(
            {
                "it": victim,
                "tags": room_state.get("tags", 0) + 1,
                "scores": {it: scores.get(it, 0) + 1},
                "cooldown": {"pid": it, "until": tick + self.cooldown_ticks},
            }
        )
        self.room.send_event({"type": "tag", "by": it, "it": victim, "tick": tick})
