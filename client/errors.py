"""Exceptions raised by the client.

They carry the close code and reason (or the HTTP status) as attributes rather than only
in the message text, because callers (tests, bots, the load tester) branch on them.
"""

from __future__ import annotations

__all__ = ["ClientClosed", "ClientError", "ConnectRefused"]


class ClientError(Exception):
    """Base class of every error the client raises on purpose."""


class ConnectRefused(ClientError):
    """A join did not end with a ``welcome``.

    Two shapes, because the contract refuses in two ways (PROTOCOL.md section 1):

    * ``code`` set, ``status`` None: the WebSocket was accepted and then closed at once with
      a contract close code (``4000``, ``4001``, ``4003``, ``4004``, ``4009``, ``4012``,
      ``1013``...), ``reason`` is the close reason. ``1006`` means the server dropped the
      connection without a close frame.
    * ``code`` None, ``status`` set: the HTTP handshake itself was refused (``403`` for a
      foreign ``Origin``, ``400``/``426`` for unknown subprotocols, ``404`` for a bad path).
    * Both None: the server answered something that is not a tickrelay handshake (a first
      message that is not ``welcome``, an undecodable frame, a subprotocol nobody offered);
      ``reason`` says what.

    Network errors (``OSError``) and timeouts (``TimeoutError``) are not wrapped: they are
    not refusals, and callers usually want to tell "server said no" from "no server".
    """

    def __init__(self, code: int | None, reason: str = "", status: int | None = None) -> None:
        super().__init__(code, reason, status)
        self.code = code
        self.reason = reason
        self.status = status

    def __str__(self) -> str:
        if self.status is not None:
            text = f"handshake refused: HTTP {self.status}"
            return f"{text} ({self.reason})" if self.reason else text
        if self.code is not None:
            return f"join refused: close {self.code} {self.reason!r}"
        return f"join failed: {self.reason}"


class ClientClosed(ClientError):
    """The connection is over for good (closed by the server, by ``close()``/``leave()``,
    or auto-reconnect gave up), so nothing more can be sent or received.

    ``code``/``reason`` are those of the last connection's end (None when unknown).
    """

    def __init__(self, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"client closed (code {self.code}, reason {self.reason!r})"
