"""The room WebSocket endpoint, ``/ws/rooms/{room_id}``.

Refusals follow the contract's order. Origin and subprotocol are refused at the handshake
(HTTP 403), before any room state is touched; every later refusal is an accepted connection
closed at once with a close code and a reason, because browsers hide handshake statuses.
"""

from __future__ import annotations

import functools
import logging
import re
from urllib.parse import unquote

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket

from tickrelay.protocol import CloseCode, codec_for, negotiate
from tickrelay.protocol.codec import Limits
from tickrelay.server.auth import Identity, check_room, verify
from tickrelay.server.connection import OPEN, Connection
from tickrelay.server.refusal import JoinRefusal
from tickrelay.server.room import RESUME_FAILED
from tickrelay.server.roomquota import client_address
from tickrelay.server.services import Services
from tickrelay.server.settings import Settings
from tickrelay.server.transport import EXTENSION, TransportHandle

log = logging.getLogger("tickrelay.endpoint")

PREFIX = "/ws/rooms/"
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TRUE_VALUES = ("1", "true")


def raw_room_segment(websocket: WebSocket) -> str | None:
    """The still percent-encoded id, or None when the path is not this route (no id, a '/')."""
    raw_path = websocket.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else websocket.scope["path"]
    path = path.split("?", 1)[0]
    if not path.startswith(PREFIX):
        return None
    segment = path[len(PREFIX) :]
    if not segment or "/" in segment:
        return None
    return segment


async def room_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    settings = services.settings
    segment = raw_room_segment(websocket)
    if segment is None:
        await websocket.send_denial_response(PlainTextResponse("Not Found", status_code=404))
        return
    allowed = settings.allowed_origins
    if allowed and websocket.headers.get("origin") not in allowed:
        await websocket.close(CloseCode.POLICY)  # before accept: HTTP 403
        return
    offered = websocket.scope.get("subprotocols") or []
    subprotocol = negotiate(offered)
    if subprotocol is None:
        await websocket.close(CloseCode.POLICY)  # before accept: HTTP 403
        return
    await websocket.accept(subprotocol=subprotocol if offered else None)
    handle: TransportHandle | None = websocket.scope.get("extensions", {}).get(EXTENSION)
    if handle is not None:
        handle.set_high_water(settings.write_high_water)
        handle.set_slow_consumer_timeout(settings.slow_consumer_timeout)
    metrics = services.metrics
    limits = Limits(max_message_size=settings.max_message_size)
    conn = Connection(websocket, codec_for(subprotocol, limits), settings, handle, services.tasks)
    metrics.opened(conn)
    detached = False
    code: int | None = None
    try:
        try:
            await join(services, conn, websocket, unquote(segment), metrics.connections)
        except JoinRefusal as refusal:
            metrics.refuse(refusal.code)
            await websocket.close(refusal.code, refusal.reason)
            return
        metrics.joined(resumed="resume" in websocket.query_params)
        if handle is not None:
            handle.set_message_handler(conn.handle_frame)
            handle.detach(functools.partial(connection_lost, services, conn))
            conn.websocket = None  # the handshake's objects can go
            detached = True
            return  # the room and the transport own the connection from here
        code = await conn.serve()
        conn.ended(code)
    finally:
        if not detached:
            joined = conn.state is not OPEN
            metrics.finished(conn, joined, joined and conn.end_reason(code) is None)
            await conn.finish()


def connection_lost(services: Services, conn: Connection, code: int | None) -> None:
    """The end of a detached connection: its place goes away or into resume grace."""
    conn.ended(code)
    conn.release()
    services.metrics.finished(conn, True, conn.end_reason(code) is None)


async def join(
    services: Services, conn: Connection, websocket: WebSocket, room_id: str, connections: int
) -> None:
    """Run the contract's checks in order and take a place in the room, or raise JoinRefusal.

    The order: busy (1013), bad id or spectate value (4000), the token (4001, 4003), then
    the room (a resume's token 4012 or 4001, no room 4004, a takeover 4003, full 4009).
    """
    settings = services.settings
    if connections > settings.max_connections or services.draining:
        raise JoinRefusal(CloseCode.TRY_AGAIN, "server busy, try again later")
    if not ROOM_ID.fullmatch(room_id):
        raise JoinRefusal(CloseCode.BAD_REQUEST, "bad room id")
    query = websocket.query_params
    spectate_value = query.get("spectate")
    if spectate_value is not None and spectate_value not in TRUE_VALUES:
        raise JoinRefusal(CloseCode.BAD_REQUEST, "bad spectate value")
    identity = authenticate(settings, websocket, room_id)
    spectate_only = identity is not None and identity.spectate_only
    resume_token = query.get("resume")
    create = settings.create_rooms_on_join and resume_token is None
    creator = client_address(websocket.scope)
    room = await services.registry.locate(room_id, create=create, creator=creator)
    if room is None:
        if resume_token is not None:
            raise JoinRefusal(CloseCode.RESUME_FAILED, RESUME_FAILED)
        raise JoinRefusal(CloseCode.NO_ROOM, "no such room")
    room, member = await services.registry.join(
        room,
        conn,
        identity.pid if identity is not None else None,
        spectate_value is not None or spectate_only,
        resume_token,
        spectate_only,
    )
    conn.joined(room, member)


def authenticate(settings: Settings, websocket: WebSocket, room_id: str) -> Identity | None:
    """The verified identity, or None when auth is off; raises AuthError (a JoinRefusal)."""
    if not settings.auth_secret:
        return None
    token = websocket.query_params.get("token")
    header = websocket.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
    identity = verify(token, settings.auth_secret, settings.auth_leeway)
    check_room(identity, room_id)
    return identity
