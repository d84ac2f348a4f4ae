"""Who connects where: the seats of a run, split across driver processes.

Deterministic from the config (seed included), so every worker computes its own share
without the parent shipping thousands of seats, and two runs with the same seed put the
slow players in the same places.
"""

from __future__ import annotations

import random
import time

import jwt

from tickrelay.loadtest.config import LoadConfig
from tickrelay.loadtest.player import Seat


def room_id(cfg: LoadConfig, room: int) -> str:
    """Room ids are `<prefix>-<n>` (valid per the contract: `[A-Za-z0-9_-]{1,64}`)."""
    return f"{cfg.room_prefix}-{room}"


def slow_indices(cfg: LoadConfig) -> frozenset[int]:
    """Global indices of the slow players (spectators are never slow)."""
    per_room = cfg.players + cfg.spectators
    players = [r * per_room + m for r in range(cfg.rooms) for m in range(cfg.players)]
    k = round(cfg.slow.fraction * len(players))
    return frozenset(random.Random(cfg.seed).sample(players, k)) if k else frozenset()


def mint_token(secret: str, sub: str, ttl: float, rooms: list[str] | None) -> str:
    """An HS256 JWT the way tickrelay expects it: `sub`, `exp`, optionally `rooms`."""
    claims: dict[str, object] = {"sub": sub, "exp": int(time.time() + ttl)}
    if rooms is not None:
        claims["rooms"] = rooms
    return jwt.encode(claims, secret, algorithm="HS256")


def plan_seats(cfg: LoadConfig, worker: int) -> list[Seat]:
    """The seats worker `worker` drives, in connection order.

    Global index `g` runs room by room (rooms fill up one after the other during the ramp);
    worker `w` takes every `g` with `g % workers == w`. Room `r` is served by URL
    `r % len(cfg.urls)`.
    """
    per_room = cfg.players + cfg.spectators
    slow = slow_indices(cfg)
    ttl = cfg.ramp_seconds + cfg.warmup + cfg.duration + 600
    seats: list[Seat] = []
    for g in range(worker, cfg.connections, cfg.workers):
        r, m = divmod(g, per_room)
        room = room_id(cfg, r)
        token = None
        if cfg.secret is not None:
            rooms = [room] if cfg.token_rooms else None
            token = mint_token(cfg.secret, f"{cfg.room_prefix}-p{g}", ttl, rooms)
        seats.append(Seat(g, room, m >= cfg.players, g in slow, token, r % len(cfg.urls)))
    return seats
