"""tickrelay asyncio client: join a room, send inputs/events, mirror the room state.

Quick start::

    from tickrelay.client import connect

    async with await connect("ws://127.0.0.1:8000", "lobby") as room:
        await room.send_input({"x": 1})
        await room.next_state()
        print(room.mirror.players)

See :mod:`tickrelay.client.room_client` for the design (one reader task per client, a message
queue for consumers, auto-reconnect with resume) and the parts it is composed of;
:class:`ClientOptions` lists every option of ``connect``.
"""

from .errors import ClientClosed, ClientError, ConnectRefused
from .options import ClientOptions
from .room_client import RoomClient, connect, connect_ctx
from .session import SessionState
from .urls import backoff_delays, build_url

__all__ = [
    "ClientClosed",
    "ClientError",
    "ClientOptions",
    "ConnectRefused",
    "RoomClient",
    "SessionState",
    "backoff_delays",
    "build_url",
    "connect",
    "connect_ctx",
]
