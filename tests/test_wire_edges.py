"""Frames as TCP delivers them: split, batched, fragmented, mixed with control frames."""

from __future__ import annotations

import asyncio
import os
import struct

import msgpack
from websockets.asyncio.client import connect as ws_connect

from tests.helpers import raw_socket, state_until
from tickrelay.client import connect


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask); payloads under 126 bytes only."""
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


async def test_leave_and_close_frame_in_one_read_end_the_seat_as_left(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.wait_for("snap")
        async with raw_socket(server.port, room_id) as (_reader, writer):
            joined = await alice.wait_for("join")
            await state_until(alice, lambda mirror: joined["pid"] in mirror.players)
            leave = masked_frame(0x2, msgpack.packb({"t": "leave"}))
            close = masked_frame(0x8, struct.pack("!H", 1000))
            writer.write(leave + close)
            await writer.drain()
            left = await alice.wait_for("leave")
            assert left == {"t": "leave", "pid": joined["pid"], "reason": "left"}


async def test_a_client_ping_is_answered_with_a_pong(server, room_id):
    async with ws_connect(f"{server.ws}/ws/rooms/{room_id}") as ws:
        await ws.recv()  # welcome
        pong = await ws.ping(b"are you there")
        latency = await asyncio.wait_for(pong, 5)
        assert latency >= 0


async def test_a_fragmented_message_is_reassembled_and_applied(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.wait_for("snap")
        async with ws_connect(f"{server.ws}/ws/rooms/{room_id}") as ws:
            welcome = msgpack.unpackb(await ws.recv())
            frame = msgpack.packb({"t": "input", "seq": 1, "d": {"split": "yes" * 20}})
            await ws.send([frame[:5], frame[5:20], frame[20:]])
            await state_until(
                alice, lambda mirror: mirror.players.get(welcome["pid"]) == {"split": "yes" * 20}
            )


async def test_frames_arriving_one_byte_at_a_time_are_applied_in_order(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.wait_for("snap")
        async with raw_socket(server.port, room_id) as (_reader, writer):
            joined = await alice.wait_for("join")
            data = b"".join(
                masked_frame(0x2, msgpack.packb({"t": "input", "seq": n, "d": {"n": n}}))
                for n in (1, 2, 3)
            )
            for byte in data:
                writer.write(bytes((byte,)))
                await writer.drain()
            await state_until(
                alice,
                lambda mirror: (
                    mirror.acks.get(joined["pid"]) == 3
                    and mirror.players[joined["pid"]] == {"n": 3}
                ),
            )
