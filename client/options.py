"""The client's options, defined once.

:func:`~tickrelay.client.connect` and :class:`~tickrelay.client.RoomClient` take these as
keyword arguments (or a ready :class:`ClientOptions`, shared by many clients) and build one
:class:`ClientOptions` from them, so adding an option is one field here (with its default
and its documentation), not an edit in every signature. An unknown keyword is a
``TypeError`` naming it, as a misspelt argument would be.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from tickrelay.protocol import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, Limits

from .urls import backoff_delays

if TYPE_CHECKING:
    from .room_client import RoomClient

__all__ = ["ClientOptions", "CodecName", "OnReconnect"]

CodecName = Literal["msgpack", "json"]
#: ``on_reconnect`` callback: called with the client after each successful reconnect
#: (its ``resumed`` attribute tells a resume from a fresh join); may be sync or async.
OnReconnect = Callable[["RoomClient"], Awaitable[None] | None]

SUBPROTOCOLS: dict[str, str] = {"msgpack": MSGPACK_SUBPROTOCOL, "json": JSON_SUBPROTOCOL}
#: Decoding limits for *server* messages. The contract bounds client messages (64 KiB) but
#: says clients must accept whatever the state bounds allow (a full snapshot of a big room),
#: so the frame size is bounded only by ``max_size`` (the WebSocket layer) and the nesting
#: depth generously above the input depth limit plus the snapshot's own wrapping levels.
_UNBOUNDED_SIZE = 2**62
_SERVER_MAX_DEPTH = 256


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """Every option of a client; the keyword arguments of ``connect`` and ``RoomClient``."""

    #: Auth token: the ``token`` query parameter, or ``Authorization: Bearer`` with
    #: ``token_in_header=True``.
    token: str | None = None
    token_in_header: bool = False
    #: Join as a spectator (``spectate=1``).
    spectate: bool = False
    #: The subprotocol offered; the codec actually used is the one the server chose.
    codec: CodecName = "msgpack"
    #: The ``Origin`` header (servers with an origin allowlist need it).
    origin: str | None = None
    #: Overrides the whole subprotocol offer (tests: ``[]`` offers none).
    subprotocols: Sequence[str] | None = None
    #: Reconnect after a close in ``tickrelay.protocol.RECONNECTABLE``, resuming.
    auto_reconnect: bool = False
    #: ``(base, maximum)`` of the jittered exponential backoff, in seconds.
    reconnect_backoff: tuple[float, float] = (0.1, 5.0)
    reconnect_attempts: int = 10
    #: Bounds the TCP + WebSocket handshake and, separately, the wait for the welcome.
    open_timeout: float = 5.0
    #: Largest server message accepted (None: no limit, a big room's snapshot is big).
    max_size: int | None = None
    #: How long a send waits for a reconnect.
    send_timeout: float = 10.0
    close_timeout: float = 5.0
    #: permessage-deflate; off by default (CPU and memory per connection for little gain).
    compression: Literal["deflate"] | None = None
    #: Extra HTTP headers of the handshake.
    headers: Mapping[str, str] | None = None
    #: The ``seq`` to count on from (pass the old client's ``seq`` when resuming by hand).
    initial_seq: int = 0
    #: Queue every decoded message for ``recv``; False for bots that never read the queue.
    keep_messages: bool = True
    on_reconnect: OnReconnect | None = None
    #: Randomness of the backoff jitter (seed it for reproducible tests).
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        """Validate now rather than in the middle of a reconnect."""
        if self.codec not in SUBPROTOCOLS:
            raise ValueError(f"codec must be 'msgpack' or 'json', not {self.codec!r}")
        base, maximum = self.reconnect_backoff
        next(backoff_delays(base, maximum, 1), None)

    @classmethod
    def build(
        cls, caller: str, base: ClientOptions | None, kwargs: Mapping[str, Any]
    ) -> ClientOptions:
        """``base`` (or the defaults) with the keyword arguments given to ``caller`` on top;
        unknown names are a ``TypeError`` naming them (and the caller, not this class)."""
        unknown = sorted(set(kwargs) - OPTION_NAMES)
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            raise TypeError(f"{caller}() got unexpected keyword argument(s) {names}")
        return cls(**kwargs) if base is None else dataclasses.replace(base, **kwargs)

    def offered_subprotocols(self) -> list[str] | None:
        """The ``Sec-WebSocket-Protocol`` offer; None sends no header."""
        if self.subprotocols is not None:
            # An empty list means "offer none" (the server then defaults to msgpack);
            # websockets would send an empty header for [], so send no header instead.
            return list(self.subprotocols) or None
        return [SUBPROTOCOLS[self.codec]]

    def decoding_limits(self) -> Limits:
        """Limits for decoding server messages (see ``_UNBOUNDED_SIZE``)."""
        size = self.max_size if self.max_size is not None else _UNBOUNDED_SIZE
        return Limits(max_message_size=size, max_depth=_SERVER_MAX_DEPTH)


#: The accepted keyword names, for the unknown-name check.
OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(ClientOptions))
