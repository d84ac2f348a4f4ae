"""`tutorial`: the FastAPI WebSocket tutorial's pattern, as most relays start out.

A ConnectionManager list per room; every input is applied and the resulting room state is
broadcast at once (a snap with acks) with a sequential
``for ws in active: await ws.send_bytes(frame)`` from the sender's own receive loop, so one
slow member holds up the whole room. MessagePack only.
Run: ``python -m tickrelay.loadtest.baselines.tutorial --host 127.0.0.1 --port 8001``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from tickrelay.loadtest.baselines.common import (
    MSGPACK_SUBPROTOCOL,
    Room,
    new_pid,
    parse_args,
    parse_target,
)


class ConnectionManager:
    """The tutorial's manager: a list of sockets and a sequential broadcast."""

    def __init__(self) -> None:
        self.active: list[WebSocket] = []

    def connect(self, websocket: WebSocket) -> None:
        self.active.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        if websocket in self.active:
            self.active.remove(websocket)

    async def broadcast(self, data: bytes) -> None:
        for connection in list(self.active):
            try:
                await connection.send_bytes(data)
            except Exception:  # a dead member must not break the sender's loop
                self.disconnect(connection)


class TutorialRoom(Room):
    """Room state plus its manager."""

    def __init__(self, room_id: str) -> None:
        super().__init__(room_id)
        self.manager = ConnectionManager()

    async def publish(self) -> None:
        """Broadcast the current state now, labelled with the next message number."""
        self.tick += 1
        await self.manager.broadcast(msgpack.packb(self.snap()))


rooms: dict[str, TutorialRoom] = {}
app = FastAPI()


async def admit(websocket: WebSocket, room_id: str) -> tuple[TutorialRoom, str, bool] | None:
    """Accept, check the room id, join; None (after a 4000 close) when the id is bad."""
    valid, spectator = parse_target(websocket.scope["path"] + "?" + _query(websocket))
    await websocket.accept(subprotocol=MSGPACK_SUBPROTOCOL)
    if valid is None:
        await websocket.close(4000, "bad room id")
        return None
    room = rooms.get(room_id)
    if room is None:
        room = rooms[room_id] = TutorialRoom(room_id)
    pid = new_pid()
    await websocket.send_bytes(msgpack.packb(room.welcome(pid, spectator)))
    room.join(pid, spectator)
    room.manager.connect(websocket)
    return room, pid, spectator


def _query(websocket: WebSocket) -> str:
    return websocket.scope.get("query_string", b"").decode("latin-1")


def dispose_if_empty(room: TutorialRoom) -> None:
    """Forget a room nobody is in."""
    if not room.manager.active and rooms.get(room.id) is room:
        del rooms[room.id]


@app.websocket("/ws/rooms/{room_id}")
async def room_endpoint(websocket: WebSocket, room_id: str) -> None:
    """Receive loop: apply each input and broadcast the result at once."""
    joined = await admit(websocket, room_id)
    if joined is None:
        return
    room, pid, _ = joined
    try:
        await room.publish()
        while True:
            msg: Any = msgpack.unpackb(await websocket.receive_bytes())
            if isinstance(msg, dict) and msg.get("t") == "leave":
                await websocket.close(1000, "left")
                break
            if room.apply(pid, msg):
                await room.publish()
    except (WebSocketDisconnect, ValueError, KeyError, RuntimeError):
        pass
    finally:
        room.manager.disconnect(websocket)
        room.leave(pid)
        if room.manager.active:
            await room.publish()
        dispose_if_empty(room)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    args = parse_args(argv, "tutorial baseline relay (FastAPI, broadcast per input)")
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", log_level="warning")


if __name__ == "__main__":
    main()
