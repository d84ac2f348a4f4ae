"""The description of one load run, shared by the CLI, the runner, the workers and the bench.

Plain frozen dataclasses so that it pickles to the driver processes and serialises into the
JSON report unchanged (a report must say exactly what produced it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

Codec = Literal["msgpack", "json"]
SlowMode = Literal["stall", "rate"]

SUBPROTOCOLS: dict[str, str] = {
    "msgpack": "tickrelay.v1.msgpack",
    "json": "tickrelay.v1.json",
}


@dataclass(frozen=True, slots=True)
class SlowConfig:
    """Which players are slow readers and how.

    `stall`: stop reading for `stall` seconds every `every` seconds (`stall` 0 = stop reading
    for good after the welcome). `rate`: read at most `rate` bytes per second. Slow players
    get a small socket receive buffer (`rcvbuf`) so the server feels them within seconds
    instead of after megabytes of kernel buffering.
    """

    fraction: float = 0.0
    mode: SlowMode = "stall"
    stall: float = 0.0
    every: float = 10.0
    rate: int = 2048
    rcvbuf: int = 4096
    mss: int = 1448


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the driver declares itself the bottleneck (the run's figures are then invalid)."""

    worker_cpu: float = 0.90
    total_cpu: float = 0.90
    loop_lag_p99_ms: float = 50.0


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """One run: `ramp` connects per second, then `warmup`, then `duration` measured seconds."""

    url: str = "ws://127.0.0.1:8000"
    rooms: int = 1
    players: int = 8
    spectators: int = 0
    input_hz: float = 20.0
    duration: float = 10.0
    ramp: float = 200.0
    warmup: float = 1.0
    workers: int = 1
    codec: Codec = "msgpack"
    slow: SlowConfig = field(default_factory=SlowConfig)
    churn: float = 0.0
    secret: str | None = None
    token_rooms: bool = False
    room_prefix: str = "lt"
    seed: int = 1
    connect_timeout: float = 10.0
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        if self.rooms < 1 or self.players < 0 or self.spectators < 0:
            raise ValueError("rooms must be >= 1, players and spectators >= 0")
        if self.players + self.spectators < 1:
            raise ValueError("a room needs at least one player or spectator")
        if self.input_hz <= 0 or self.duration <= 0 or self.ramp <= 0 or self.workers < 1:
            raise ValueError("input rate, duration, ramp-up and workers must be positive")
        if not 0 <= self.slow.fraction <= 1:
            raise ValueError("slow fraction must be within 0..1")
        if self.codec not in SUBPROTOCOLS:
            raise ValueError(f"unknown codec {self.codec!r}")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme != "ws" or not parts.hostname:
                raise ValueError(f"only ws:// URLs are supported: {url!r}")

    @property
    def urls(self) -> tuple[str, ...]:
        """The servers: ``url`` may list several, comma-separated, and room ``r`` then goes
        to the ``r % n``-th (independent servers side by side, as the bench's two-process
        baseline needs, or the workers of a cluster reached without a proxy)."""
        return tuple(u.strip() for u in self.url.split(","))

    @property
    def connections(self) -> int:
        """Total connections (players and spectators)."""
        return self.rooms * (self.players + self.spectators)

    @property
    def ramp_seconds(self) -> float:
        """How long connecting everybody takes at the configured rate."""
        return self.connections / self.ramp

    @property
    def window(self) -> tuple[int, int]:
        """Measured seconds [start, end) counted from the run's start, on whole seconds so that
        the workers' one-second intervals tile it exactly."""
        start = math.ceil(self.ramp_seconds + self.warmup)
        return start, start + math.ceil(self.duration)

    def host_port(self, server: int = 0) -> tuple[str, int]:
        """Where to connect, for the rooms of the ``server``-th URL."""
        parts = urlsplit(self.urls[server])
        return parts.hostname or "127.0.0.1", parts.port or 80

    def base_path(self, server: int = 0) -> str:
        """Path prefix before `/ws/rooms/{id}` (normally empty)."""
        return urlsplit(self.urls[server]).path.rstrip("/")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the secret redacted."""
        d = asdict(self)
        if d["secret"] is not None:
            d["secret"] = "***"
        return d
