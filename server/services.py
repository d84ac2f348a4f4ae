"""The app's shared objects, made by the app factory and read by every route.

They belong to the app rather than to one route: the WebSocket endpoint and the HTTP API
both read them from ``app.state.services``, and neither owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tickrelay.server.metrics import Metrics
from tickrelay.server.registry import RoomRegistry
from tickrelay.server.settings import Settings
from tickrelay.server.tasks import Tasks


@dataclass
class Services:
    """What the endpoint and the HTTP API share; lives on ``app.state.services``."""

    settings: Settings
    registry: RoomRegistry
    metrics: Metrics
    tasks: Tasks = field(default_factory=Tasks)
    draining: bool = False
