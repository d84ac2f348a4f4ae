"""What the baselines share: path parsing, the room model, message builders.

Kept deliberately naive where the pattern is naive (no backpressure, no deltas): the point
of a baseline is to be what people write first, not a second tickrelay.
"""

from __future__ import annotations

import argparse
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MSGPACK_SUBPROTOCOL = "tickrelay.v1.msgpack"
JSON_SUBPROTOCOL = "tickrelay.v1.json"
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PATH_PREFIX = "/ws/rooms/"
TICK_RATE = 20


def now_ms() -> int:
    """Server wall clock for `st` (ms since the epoch)."""
    return int(time.time() * 1000)


def parse_target(target: str) -> tuple[str | None, bool]:
    """`/ws/rooms/{id}?spectate=1` -> (room id or None when invalid, spectator)."""
    parts = urlsplit(target)
    if not parts.path.startswith(PATH_PREFIX):
        return None, False
    room = unquote(parts.path[len(PATH_PREFIX) :])
    spectate = parse_qs(parts.query).get("spectate", [""])[0] in ("1", "true")
    return (room if ROOM_ID.fullmatch(room) else None), spectate


def new_pid() -> str:
    """Random player id (no auth in the baselines)."""
    return secrets.token_hex(6)


def merge(state: dict[str, Any], patch: Any) -> None:
    """RFC 7386 merge patch, in place, one level deep (inputs are flat `{x, y}` maps)."""
    if not isinstance(patch, dict):
        return
    for k, v in patch.items():
        if v is None:
            state.pop(k, None)
        else:
            state[k] = v


class Room:
    """Players' states and acks; spectators hold no seat."""

    def __init__(self, room_id: str) -> None:
        self.id = room_id
        self.players: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, int] = {}
        self.host: str | None = None
        self.tick = 0
        self.dirty = True
        self.created = time.monotonic()

    def join(self, pid: str, spectator: bool) -> None:
        if not spectator:
            self.players[pid] = {}
            self.acks[pid] = 0
            if self.host is None:
                self.host = pid
        self.dirty = True

    def leave(self, pid: str) -> None:
        if self.players.pop(pid, None) is not None:
            self.acks.pop(pid, None)
            if self.host == pid:
                self.host = next(iter(self.players), None)
            self.dirty = True

    def apply(self, pid: str, msg: Any) -> bool:
        """Apply an `input` at once; True when it changed something."""
        if not isinstance(msg, dict) or msg.get("t") != "input" or pid not in self.players:
            return False
        seq = msg.get("seq")
        if type(seq) is not int or seq <= self.acks[pid]:
            return False
        merge(self.players[pid], msg.get("d"))
        self.acks[pid] = seq
        self.dirty = True
        return True

    def welcome(self, pid: str, spectator: bool) -> dict[str, Any]:
        return {
            "t": "welcome",
            "pid": pid,
            "room": self.id,
            "tick": self.tick,
            "rate": TICK_RATE,
            "host": self.host,
            "resume": secrets.token_hex(8),
            "spectator": spectator,
            "resumed": False,
            "st": now_ms(),
        }

    def snap(self) -> dict[str, Any]:
        return {
            "t": "snap",
            "tick": self.tick,
            "st": now_ms(),
            "s": {"players": self.players, "room": {}},
            "acks": self.acks,
        }


def parse_args(argv: Sequence[str] | None, description: str) -> argparse.Namespace:
    """`--host` / `--port`, like `tickrelay serve`, so the bench starts them all alike."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    return parser.parse_args(argv)
