"""The backplane: how workers share rooms. One small interface, implementations side by side."""

from tickrelay.server.backplane.base import Backplane, Subscription
from tickrelay.server.backplane.memory import MemoryBackplane

__all__ = ["Backplane", "MemoryBackplane", "Subscription", "create_backplane"]


def create_backplane(redis_url: str | None) -> Backplane:
    """The process-local backplane. With a Redis URL, rooms are shared by the cluster
    registry (``tickrelay.server.cluster``) on top of it."""
    return MemoryBackplane()
