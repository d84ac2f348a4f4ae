"""`floor`: the cheapest Python relay we know of, as the bench's lower bound.

`websockets` (the library) asyncio server on uvloop; each room's tick encodes the state once
per codec and hands the same bytes to `websockets.broadcast()`, which writes them to every
connection without awaiting anything. No backpressure at all (a stalled client's buffer
grows until the heartbeat drops it): that is the price of being the floor.
Run: ``python -m tickrelay.loadtest.baselines.floor --host 127.0.0.1 --port 8001``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Sequence
from typing import Any

import msgpack
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tickrelay.loadtest.baselines.common import (
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    PATH_PREFIX,
    TICK_RATE,
    Room,
    new_pid,
    parse_args,
    parse_target,
)


def _encode(subprotocol: str, msg: dict[str, Any]) -> bytes | str:
    if subprotocol == JSON_SUBPROTOCOL:
        return json.dumps(msg, separators=(",", ":"))
    return msgpack.packb(msg)


def _decode(frame: bytes | str) -> Any:
    if isinstance(frame, str):
        return json.loads(frame)
    return msgpack.unpackb(frame)


class FloorRoom(Room):
    """A room plus its members grouped by codec and its tick task."""

    def __init__(self, room_id: str) -> None:
        super().__init__(room_id)
        self.members: dict[str, set[ServerConnection]] = {
            MSGPACK_SUBPROTOCOL: set(),
            JSON_SUBPROTOCOL: set(),
        }
        self.task: asyncio.Task[None] | None = None

    def empty(self) -> bool:
        return not any(self.members.values())

    async def tick_loop(self) -> None:
        """Fixed-rate ticks on the monotonic clock; a late tick runs late, numbered by time."""
        loop = asyncio.get_running_loop()
        period = 1.0 / TICK_RATE
        start = loop.time() - self.tick * period
        while True:
            await asyncio.sleep(max(0.0, start + (self.tick + 1) * period - loop.time()))
            self.tick = max(self.tick + 1, int((loop.time() - start) / period))
            if not self.dirty:
                continue
            self.dirty = False
            snap = self.snap()
            for sub, conns in self.members.items():
                if conns:
                    broadcast(conns, _encode(sub, snap))


class FloorServer:
    """Rooms by id; one handler per connection."""

    def __init__(self) -> None:
        self.rooms: dict[str, FloorRoom] = {}

    async def handler(self, ws: ServerConnection) -> None:
        room_id, spectator = parse_target(ws.request.path if ws.request else "")
        if room_id is None:
            await ws.close(4000, "bad room id")
            return
        sub = ws.subprotocol or MSGPACK_SUBPROTOCOL
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = FloorRoom(room_id)
            room.task = asyncio.create_task(room.tick_loop())
        pid = new_pid()
        room.join(pid, spectator)
        room.members[sub].add(ws)
        try:
            await ws.send(_encode(sub, room.welcome(pid, spectator)))
            async for frame in ws:
                try:
                    msg = _decode(frame)
                except ValueError:
                    continue
                if isinstance(msg, dict) and msg.get("t") == "leave":
                    await ws.close(1000, "left")
                    break
                room.apply(pid, msg)
        except ConnectionClosed:
            pass
        finally:
            room.members[sub].discard(ws)
            room.leave(pid)
            if room.empty() and self.rooms.get(room_id) is room:
                del self.rooms[room_id]
                if room.task is not None:
                    room.task.cancel()

    async def close(self) -> None:
        """Cancel and await every tick task."""
        tasks = [r.task for r in self.rooms.values() if r.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _only_rooms(connection: ServerConnection, request: Request) -> Response | None:
    if not request.path.startswith(PATH_PREFIX):
        return connection.respond(404, "not found\n")
    return None


async def serve_floor(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = FloorServer()
    try:
        async with serve(
            app.handler,
            host,
            port,
            subprotocols=[MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL],  # type: ignore[list-item]
            process_request=_only_rooms,
            compression=None,
            backlog=4096,
        ):
            await stop.wait()
    finally:
        await app.close()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    args = parse_args(argv, "floor baseline relay (websockets + broadcast)")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve_floor(args.host, args.port))


if __name__ == "__main__":
    main()
