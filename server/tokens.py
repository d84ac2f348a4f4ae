"""Resume tokens: opaque, single-use in effect (each ``welcome`` replaces the last one).

A token names its room and player so the endpoint can find the place to resume without
trusting anything the client says; it dies when a newer one is issued or the place ends.
"""

from __future__ import annotations

import secrets


class ResumeTokens:
    """Live tokens of this worker, token -> (room id, pid)."""

    def __init__(self) -> None:
        self._live: dict[str, tuple[str, str]] = {}

    def issue(self, room_id: str, pid: str, previous: str = "") -> str:
        self.revoke(previous)
        token = secrets.token_urlsafe(24)
        self._live[token] = (room_id, pid)
        return token

    def restore(self, token: str, room_id: str, pid: str) -> None:
        """A token issued by a worker that is gone, for the room taken over here."""
        if token:
            self._live[token] = (room_id, pid)

    def lookup(self, token: str) -> tuple[str, str] | None:
        return self._live.get(token)

    def revoke(self, token: str) -> None:
        if token:
            self._live.pop(token, None)

    def __len__(self) -> int:
        return len(self._live)
