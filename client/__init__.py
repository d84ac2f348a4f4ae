"""tickrelay asyncio client: join a room, send inputs/events, mirror the room state.

Quick start::

    from tickrelay.client import connect

    async with await connect("ws://127.0.0.1:8000", "lobby") as room:
        await room.send_input({"x": 1})
        await room.next_state()
        print(room.mirror.players)

See :mod:`tickrelay.client.room_client` for the design (one reader task per client, a message
queue for consumers, auto-reconnect with resume).
"""

from .errors import ClientClosed, ClientError, ConnectRefused
from .room_client import RoomClient, connect, connect_ctx
from .urls import backoff_delays, build_url

__all__ = [
    "ClientClosed",
    "ClientError",
    "ConnectRefused",
    "RoomClient",
    "backoff_delays",
    "build_url",
    "connect",
    "connect_ctx",
]
