"""The two ways a client message can fail, which the server handles very differently."""

from __future__ import annotations

from .codes import CloseCode, ErrorCode

__all__ = ["MessageError", "ProtocolError"]


class ProtocolError(Exception):
    """The peer broke the framing rules: nothing it sends later can be trusted, so the
    connection must be closed with ``code`` (``reason`` goes into the close frame)."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{int(self.code)} {self.reason}"


class MessageError(Exception):
    """A well-framed message was refused: answer with an ``error`` message and keep the
    connection, because one bad request must not cost a player its seat."""

    def __init__(self, code: ErrorCode, msg: str, ref: int | str | None = None) -> None:
        super().__init__(code, msg, ref)
        self.code = code
        self.msg = msg
        self.ref = ref

    def __str__(self) -> str:
        text = f"{self.code}: {self.msg}"
        return text if self.ref is None else f"{text} (ref {self.ref!r})"
