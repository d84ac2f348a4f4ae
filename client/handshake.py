"""Joining: open one WebSocket and read its first message, which must be ``welcome``.

The contract refuses a join in two ways (section 1): an HTTP status at the handshake, or an
accepted WebSocket closed at once with a close code. Both become :class:`ConnectRefused`,
so callers have one exception to catch; network errors and timeouts are not wrapped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin, Subprotocol

from tickrelay.protocol import (
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    Codec,
    ProtocolError,
    codec_for,
)

from .dispatch import Dispatcher
from .errors import ConnectRefused
from .options import ClientOptions
from .urls import build_url

__all__ = ["CLIENT_PROTOCOL_ERROR", "Joined", "join"]

#: WebSocket close code the client uses when the *server* breaks the framing rules.
CLIENT_PROTOCOL_ERROR = 1002


@dataclass(frozen=True)
class Joined:
    """A connection that got its ``welcome`` (not yet delivered to the dispatcher)."""

    ws: ClientConnection
    codec: Codec
    welcome: dict[str, Any]


async def join(
    base_url: str,
    room_id: str,
    options: ClientOptions,
    resume: str | None,
    dispatcher: Dispatcher,
) -> Joined:
    """Open a connection to the room and read its ``welcome``; raise on any refusal.

    The first frame is counted and decoded by ``dispatcher`` (so ``bytes_received`` and
    ``decode_errors`` include it); the caller delivers the welcome.
    """
    ws = await _open(base_url, room_id, options, resume)
    try:
        codec = _negotiated_codec(ws, options)
        welcome = await _first_message(ws, codec, options, dispatcher)
    except BaseException:
        # Covers refusals, timeouts and cancellation (close() during a reconnect):
        # always finish the closing handshake so no socket or task is leaked.
        await ws.close()
        raise
    return Joined(ws, codec, welcome)


async def _open(
    base_url: str, room_id: str, options: ClientOptions, resume: str | None
) -> ClientConnection:
    """The WebSocket handshake; an HTTP refusal is a ``ConnectRefused`` with its status."""
    url = build_url(
        base_url,
        room_id,
        token=None if options.token_in_header else options.token,
        resume=resume,
        spectate=options.spectate,
    )
    headers = dict(options.headers or {})
    if options.token is not None and options.token_in_header:
        headers["Authorization"] = f"Bearer {options.token}"
    offered = options.offered_subprotocols()
    try:
        return await ws_connect(
            url,
            origin=Origin(options.origin) if options.origin is not None else None,
            subprotocols=[Subprotocol(p) for p in offered] if offered else None,
            additional_headers=headers or None,
            open_timeout=options.open_timeout,
            close_timeout=options.close_timeout,
            max_size=options.max_size,
            compression=options.compression,
        )
    except InvalidStatus as exc:
        body = exc.response.body or b""
        reason = body[:200].decode("utf-8", "replace").strip()
        raise ConnectRefused(None, reason, status=exc.response.status_code) from exc
    except InvalidHandshake as exc:
        raise ConnectRefused(None, f"invalid handshake: {exc}") from exc


def _negotiated_codec(ws: ClientConnection, options: ClientOptions) -> Codec:
    # The server picks from our offer; no subprotocol means msgpack (section 1).
    negotiated = ws.subprotocol or MSGPACK_SUBPROTOCOL
    if negotiated not in (MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL):
        raise ConnectRefused(None, f"server chose unknown subprotocol {negotiated!r}")
    return codec_for(negotiated, options.decoding_limits())


async def _first_message(
    ws: ClientConnection, codec: Codec, options: ClientOptions, dispatcher: Dispatcher
) -> dict[str, Any]:
    """The ``welcome``; a close instead is the contract's refusal of the join."""
    async with asyncio.timeout(options.open_timeout):
        try:
            frame = await ws.recv()
        except ConnectionClosed as exc:
            # Accepted then closed at once: the contract's way to refuse a join.
            rcvd = exc.rcvd
            code = int(rcvd.code if rcvd is not None else ws.close_code or 1006)
            reason = rcvd.reason if rcvd is not None else ""
            raise ConnectRefused(code, reason) from None
    try:
        welcome = dispatcher.decode(codec, frame)
    except ProtocolError as exc:
        await ws.close(CLIENT_PROTOCOL_ERROR, "undecodable message")
        raise ConnectRefused(None, f"undecodable first message: {exc}") from exc
    if welcome.get("t") != "welcome":
        await ws.close(CLIENT_PROTOCOL_ERROR, "expected welcome")
        raise ConnectRefused(None, f"expected welcome, got {welcome.get('t')!r}")
    return welcome
