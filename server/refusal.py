"""The root of every refusal that ends a join, so the endpoint needs one ``except``.

Whoever turns a player away (a full room, the room logic, a bad token, a room that cannot
start) raises a subclass with the close code the contract gives that refusal; the endpoint
closes the accepted connection with it.
"""

from __future__ import annotations


class JoinRefusal(Exception):
    """A join refused with a close code and a reason (both sent in the close frame)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
