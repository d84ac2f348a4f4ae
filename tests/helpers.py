"""Helpers shared by the tests: waiting on a client, checking answers and refusals, joining
without the client, and the HTTP calls several files need.

Fixtures stay in ``conftest.py``; plain functions live here, so a test file imports what it
uses by name and no file keeps its own copy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from tickrelay.client import ConnectRefused, RoomClient, connect
from tickrelay.protocol import JSON_SUBPROTOCOL, StateMirror

Message = dict[str, Any]

#: The presence messages (spectators cause none).
PRESENCE = frozenset({"join", "leave", "away", "back"})


# Waiting on a client ----------------------------------------------------------------------


async def state_until(
    client: RoomClient, predicate: Callable[[StateMirror], bool], timeout: float = 5.0
) -> Message:
    """Read state messages until ``predicate(client.mirror)`` holds; returns the last one."""

    async def wait() -> Message:
        while True:
            message = await client.next_state(timeout=None)
            if predicate(client.mirror):
                return message

    if client.mirror.tick is not None and predicate(client.mirror):
        return {}
    return await asyncio.wait_for(wait(), timeout)


async def collect_until(
    client: RoomClient, predicate: Callable[[Message], bool], timeout: float = 5.0
) -> list[Message]:
    """Every message up to and including the first one for which ``predicate`` holds."""
    seen: list[Message] = []
    async with asyncio.timeout(timeout):
        while True:
            seen.append(await client.recv(timeout=None))
            if predicate(seen[-1]):
                return seen


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds (for state no message announces, e.g. a reconnect)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def acked(client: RoomClient, seq: int, pid: str | None = None) -> Callable[[StateMirror], bool]:
    """Predicate for ``state_until``: the mirror holds ``pid``'s ack ``seq``."""
    who = pid or client.pid
    return lambda mirror: mirror.acks.get(who) == seq


async def answers(client: RoomClient) -> list[Message]:
    """Everything queued up to the answer of a ping sent now (reliable messages are ordered,
    so every error caused by an earlier message is among them); the pong itself excluded."""
    await client.ping()
    return [msg for msg in client.drain() if msg["t"] != "pong"]


def errors_in(messages: list[Message]) -> list[Message]:
    return [msg for msg in messages if msg["t"] == "error"]


def record_acks(client: RoomClient) -> set[int]:
    """Every ack of the client's own pid that its mirror held after a state message."""
    seen: set[int] = set()

    def record(msg: Message) -> None:
        if msg["t"] in ("snap", "delta"):
            seen.add(client.mirror.acks.get(client.pid, 0))

    client.on_message = record
    return seen


# Answers and refusals ---------------------------------------------------------------------


def assert_error(error: Message, code: str, ref: Any) -> None:
    assert error["t"] == "error"
    assert error["code"] == code
    assert isinstance(error["msg"], str)
    assert error["msg"]
    assert error["ref"] == ref
    assert type(error["ref"]) is type(ref)


async def refusal(base_url: str, room_id: str, **kwargs: Any) -> ConnectRefused:
    """Join and expect a refusal; the client is closed if the join unexpectedly works."""
    with pytest.raises(ConnectRefused) as info:
        client = await connect(base_url, room_id, **kwargs)
        await client.close()
    return info.value


def assert_closed_with(refused: ConnectRefused, code: int) -> None:
    """Accepted, then closed with ``code`` and a non-empty reason (not an HTTP refusal)."""
    assert refused.status is None, refused
    assert refused.code == code, refused
    assert refused.reason, refused


# Frames -----------------------------------------------------------------------------------


def pack(message: Any) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def nested(depth: int) -> dict[str, Any]:
    """A map ``depth`` levels deep: {"n": {"n": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


# Joining without the client ---------------------------------------------------------------


async def raw_join(server: Any, room_id: str) -> tuple[ClientConnection, Message]:
    """A bare WebSocket (JSON subprotocol) joined to the room, and its welcome."""
    ws = await ws_connect(f"{server.ws}/ws/rooms/{room_id}", subprotocols=[JSON_SUBPROTOCOL])
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert welcome["t"] == "welcome"
    return ws, welcome


@contextlib.asynccontextmanager
async def raw_socket(
    port: int, room_id: str
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A TCP stream past a hand-written WebSocket handshake, for frames written byte by byte
    or a peer that never answers; closed on exit."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws/rooms/{room_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# HTTP API ---------------------------------------------------------------------------------


async def create_room(server: Any, room_id: str, **options: Any) -> Message:
    """``POST /rooms`` as the operator; the room's description."""
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        response = await http.post(
            "/rooms", json={"id": room_id, **options}, headers=server.admin_headers()
        )
        assert response.status_code == 201, response.text
        return response.json()


async def get_room(server: Any, room_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        return await http.get(f"/rooms/{room_id}")


# A network that can fail ------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy in front of a server, for losing connections on purpose.

    :meth:`cut` aborts every connection through it (both ends see the TCP connection end
    without a close frame, as after a network failure); :meth:`stop` also stops listening,
    so connection attempts are refused until :meth:`listen` opens the same port again.
    Every task it starts is cancelled and awaited by :meth:`stop`.
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.port = 0
        self._listener: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def listen(self) -> None:
        self._listener = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        self.cut()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        await self.listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers.update((writer, up_writer))
        pipes = (self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        for pipe in pipes:
            task = asyncio.create_task(pipe)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()
