"""`tutorial-ticked`: the tutorial's stack with a 20 Hz tick loop per room.

Inputs only change the state; each room's tick task sends the state (when it changed) to
each member in turn with ``await ws.send_bytes(frame)``, so a stalled member delays the
tick for everyone behind it. MessagePack only.
Run: ``python -m tickrelay.loadtest.baselines.tutorial_ticked --host 127.0.0.1 --port 8001``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from tickrelay.loadtest.baselines.common import (
    MSGPACK_SUBPROTOCOL,
    TICK_RATE,
    Room,
    new_pid,
    parse_args,
    parse_target,
)
from tickrelay.loadtest.baselines.tutorial import ConnectionManager


class TickedRoom(Room):
    """Room state, its manager and its tick task."""

    def __init__(self, room_id: str) -> None:
        super().__init__(room_id)
        self.manager = ConnectionManager()
        self.task: asyncio.Task[None] | None = None

    async def tick_loop(self) -> None:
        """Fixed-rate ticks; a late tick runs late and its number tells the time."""
        loop = asyncio.get_running_loop()
        period = 1.0 / TICK_RATE
        start = loop.time()
        while True:
            await asyncio.sleep(max(0.0, start + (self.tick + 1) * period - loop.time()))
            self.tick = max(self.tick + 1, int((loop.time() - start) / period))
            if self.dirty and self.manager.active:
                self.dirty = False
                await self.manager.broadcast(msgpack.packb(self.snap()))


rooms: dict[str, TickedRoom] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Cancel and await every tick task at shutdown."""
    yield
    tasks = [r.task for r in rooms.values() if r.task is not None]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


app = FastAPI(lifespan=lifespan)


@app.websocket("/ws/rooms/{room_id}")
async def room_endpoint(websocket: WebSocket, room_id: str) -> None:
    """Receive loop: apply inputs; the tick task does the sending."""
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    valid, spectator = parse_target(websocket.scope["path"] + "?" + query)
    await websocket.accept(subprotocol=MSGPACK_SUBPROTOCOL)
    if valid is None:
        await websocket.close(4000, "bad room id")
        return
    room = rooms.get(room_id)
    if room is None:
        room = rooms[room_id] = TickedRoom(room_id)
        room.task = asyncio.create_task(room.tick_loop())
    pid = new_pid()
    await websocket.send_bytes(msgpack.packb(room.welcome(pid, spectator)))
    room.join(pid, spectator)
    room.manager.connect(websocket)
    try:
        while True:
            msg: Any = msgpack.unpackb(await websocket.receive_bytes())
            if isinstance(msg, dict) and msg.get("t") == "leave":
                await websocket.close(1000, "left")
                break
            room.apply(pid, msg)
    except (WebSocketDisconnect, ValueError, KeyError, RuntimeError):
        pass
    finally:
        room.manager.disconnect(websocket)
        room.leave(pid)
        if not room.manager.active and rooms.get(room_id) is room:
            del rooms[room_id]
            if room.task is not None:
                room.task.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    args = parse_args(argv, "tutorial-ticked baseline relay (FastAPI, 20 Hz tick loop)")
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", log_level="warning")


if __name__ == "__main__":
    main()
