"""The room WebSocket endpoint, ``/ws/rooms/{room_id}``.

Refusals follow the contract's order. Origin and subprotocol are refused at the handshake
(HTTP 403), before any room state is touched; every later refusal is an accepted connection
closed at once with a close code and a reason, because browsers hide handshake statuses.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import unquote

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket

from tickrelay.protocol import CloseCode, codec_for, negotiate
from tickrelay.protocol.codec import Limits
from tickrelay.server.auth import AuthError, Identity, check_room, verify
from tickrelay.server.connection import Connection
from tickrelay.server.logic import JoinRefused
from tickrelay.server.metrics import Metrics
from tickrelay.server.registry import RoomFailed, RoomRegistry
from tickrelay.server.room import Member, Room, SeatRefused
from tickrelay.server.settings import Settings
from tickrelay.server.tasks import Tasks
from tickrelay.server.transport import EXTENSION, TransportHandle

log = logging.getLogger("tickrelay.endpoint")

PREFIX = "/ws/rooms/"
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TRUE_VALUES = ("1", "true")


class Refusal(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Services:
    """What the endpoint and the HTTP API share; lives on ``app.state.services``."""

    settings: Settings
    registry: RoomRegistry
    metrics: Metrics
    tasks: Tasks = field(default_factory=Tasks)
    draining: bool = False


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
    metrics.connections += 1
    metrics.connections_total += 1
    limits = Limits(max_message_size=settings.max_message_size)
    conn = Connection(websocket, codec_for(subprotocol, limits), settings, handle, services.tasks)
    detached = False
    try:
        try:
            room = join(services, conn, websocket, unquote(segment), metrics.connections)
        except Refusal as refusal:
            metrics.refuse(refusal.code)
            await websocket.close(refusal.code, refusal.reason)
            return
        if handle is not None:
            handle.set_message_handler(conn.handle_frame)
            handle.detach(functools.partial(connection_lost, services, room, conn))
            conn.websocket = None  # the handshake's objects can go
            detached = True
            return  # the room and the transport own the connection from here
        disconnect_code = await conn.serve()
        room.connection_ended(conn, conn.end_reason(disconnect_code))
    finally:
        if not detached:
            metrics.connections -= 1
            await conn.finish()


def connection_lost(services: Services, room: Room, conn: Connection, code: int | None) -> None:
    """The end of a detached connection: its place goes away or into resume grace."""
    services.metrics.connections -= 1
    room.connection_ended(conn, conn.end_reason(code))
    conn.release()


def join(
    services: Services, conn: Connection, websocket: WebSocket, room_id: str, connections: int
) -> Room:
    """Run the contract's checks in order and take a place in the room, or raise Refusal."""
    settings = services.settings
    if connections > settings.max_connections or services.draining:
        raise Refusal(CloseCode.TRY_AGAIN, "server busy, try again later")
    if not ROOM_ID.fullmatch(room_id):
        raise Refusal(CloseCode.BAD_REQUEST, "bad room id")
    query = websocket.query_params
    spectate_value = query.get("spectate")
    if spectate_value is not None and spectate_value not in TRUE_VALUES:
        raise Refusal(CloseCode.BAD_REQUEST, "bad spectate value")
    spectate = spectate_value is not None
    identity = authenticate(settings, websocket, room_id)
    if identity is not None and identity.spectate_only:
        spectate = True
    registry = services.registry
    resumed = find_resumed(registry, room_id, query.get("resume"), identity)
    room = registry.get(room_id)
    if room is None:
        if not settings.create_rooms_on_join:
            raise Refusal(CloseCode.NO_ROOM, "no such room")
        try:
            room = registry.create(room_id)
        except RoomFailed as exc:
            raise Refusal(CloseCode.INTERNAL, str(exc)) from None
    conn.room = room
    pid = identity.pid if identity is not None else secrets.token_hex(6)
    existing = resumed if resumed is not None else room.members.get(pid)
    if existing is not None:
        if identity is not None and identity.spectate_only and not existing.spectator:
            raise Refusal(CloseCode.FORBIDDEN, "a spectate-only token cannot take over a seat")
        room.reattach(conn, existing, by_token=resumed is not None)
        return room
    try:
        room.admit(conn, pid, spectate)
    except SeatRefused as exc:
        raise Refusal(CloseCode.ROOM_FULL, str(exc)) from None
    except JoinRefused as exc:
        raise Refusal(exc.code, exc.reason) from None
    return room


def authenticate(settings: Settings, websocket: WebSocket, room_id: str) -> Identity | None:
    if not settings.auth_secret:
        return None
    token = websocket.query_params.get("token")
    header = websocket.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
    try:
        identity = verify(token, settings.auth_secret, settings.auth_leeway)
        check_room(identity, room_id)
    except AuthError as exc:
        raise Refusal(exc.code, exc.reason) from None
    return identity


def find_resumed(
    registry: RoomRegistry, room_id: str, token: str | None, identity: Identity | None
) -> Member | None:
    """The place a resume token names, or Refusal 4012 (4001 if it is someone else's)."""
    if token is None:
        return None
    found = registry.tokens.lookup(token)
    room = registry.get(room_id)
    if found is None or found[0] != room_id or room is None:
        raise Refusal(CloseCode.RESUME_FAILED, "unknown or expired resume token")
    member = room.members.get(found[1])
    if member is None or member.resume_token != token:
        raise Refusal(CloseCode.RESUME_FAILED, "unknown or expired resume token")
    if identity is not None and identity.pid != member.pid:
        raise Refusal(CloseCode.UNAUTHORIZED, "token does not match the resumed player")
    return member
