"""What a room is created with: its options (per room) and its limits (from the settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
