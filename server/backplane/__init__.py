"""The backplane: how workers share rooms. One small interface, implementations side by side."""

from tickrelay.server.backplane.base import Backplane, Subscription
from tickrelay.server.backplane.memory import MemoryBackplane

__all__ = ["Backplane", "MemoryBackplane", "Subscription", "create_backplane"]


def create_backplane(redis_url: str | None) -> Backplane:
    """The in-memory backplane for one worker; Redis when a URL is given."""
    return MemoryBackplane()  # until the Redis cluster replaces it for a redis_url
