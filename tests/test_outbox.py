"""The outbox's writer task exists only while something waits to be written.

The outbox is pure bookkeeping around two injected callables (a direct write and an
awaitable send), so these tests drive it without sockets.
"""

from __future__ import annotations

import asyncio

from tickrelay.protocol import MsgpackCodec
from tickrelay.server.outbox import Outbox, PeerGone
from tickrelay.server.tasks import Tasks
from tickrelay.server.wire import StateFrame, Wire


class Pipe:
    """A transport stand-in: direct writes succeed until ``full``; ``send`` waits on a gate."""

    def __init__(self) -> None:
        self.full = False
        self.direct: list[bytes] = []
        self.sent: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def write_frame(self, data: bytes) -> bool:
        if self.full:
            return False
        self.direct.append(data)
        return True

    async def send(self, data: bytes) -> None:
        await self.gate.wait()
        self.sent.append(data)


def make_outbox(pipe: Pipe, tasks: Tasks) -> Outbox:
    return Outbox(MsgpackCodec(), pipe.send, 8, 1 << 16, tasks.spawn, pipe.write_frame)


def frame(tick: int) -> StateFrame:
    return StateFrame(tick, None, tick, {"p": {"x": tick}}, {}, {"p": tick})


async def test_a_client_that_keeps_up_is_written_directly_without_a_task():
    pipe, tasks = Pipe(), Tasks()
    outbox = make_outbox(pipe, tasks)
    outbox.push_reliable(Wire({"t": "event", "d": 1}))
    outbox.push_state(frame(1))
    assert len(pipe.direct) == 2
    assert outbox.writer is None and len(tasks) == 0


async def test_a_full_transport_starts_a_writer_that_ends_once_drained():
    pipe, tasks = Pipe(), Tasks()
    outbox = make_outbox(pipe, tasks)
    pipe.full = True
    pipe.gate.clear()
    outbox.push_state(frame(1))
    outbox.push_state(frame(2))  # replaces tick 1: latest wins
    assert outbox.writer is not None and len(tasks) == 1
    pipe.gate.set()
    await asyncio.wait_for(asyncio.shield(outbox.writer), 1)
    await asyncio.sleep(0)
    assert outbox.writer is None and len(tasks) == 0
    assert outbox.have_tick == 2 and outbox.skipped_states == 1
    assert len(pipe.sent) == 1


async def test_messages_queued_behind_a_writer_are_not_overtaken_by_direct_writes():
    pipe, tasks = Pipe(), Tasks()
    outbox = make_outbox(pipe, tasks)
    pipe.full = True
    pipe.gate.clear()
    outbox.push_reliable(Wire({"t": "event", "d": 1}))
    pipe.full = False  # the transport could take more, but the writer still owns the order
    outbox.push_reliable(Wire({"t": "event", "d": 2}))
    assert pipe.direct == []
    pipe.gate.set()
    await asyncio.wait_for(asyncio.shield(outbox.writer), 1)
    assert [MsgpackCodec().decode(data)["d"] for data in pipe.sent] == [1, 2]


async def test_closing_cancels_the_writer_and_the_task_owner_awaits_it():
    pipe, tasks = Pipe(), Tasks()
    outbox = make_outbox(pipe, tasks)
    pipe.full = True
    pipe.gate.clear()
    outbox.push_state(frame(1))
    writer = outbox.close()
    assert writer is not None
    await tasks.close()
    assert writer.cancelled() and len(tasks) == 0
    outbox.push_state(frame(2))  # a push after close never starts another writer
    assert outbox.writer is None and len(tasks) == 0


async def test_a_peer_gone_mid_write_ends_the_writer_quietly_and_for_good():
    pipe, tasks = Pipe(), Tasks()

    async def send_to_vanished_peer(data: bytes) -> None:
        raise PeerGone

    outbox = Outbox(
        MsgpackCodec(), send_to_vanished_peer, 8, 1 << 16, tasks.spawn, pipe.write_frame
    )
    pipe.full = True
    outbox.push_state(frame(1))
    writer = outbox.writer
    assert writer is not None
    await asyncio.wait_for(asyncio.shield(writer), 1)
    assert writer.exception() is None  # no "task writer failed" in the log
    outbox.push_state(frame(2))
    assert outbox.writer is None and len(tasks) == 0


async def test_a_frame_no_newer_than_the_clients_is_dropped():
    pipe, tasks = Pipe(), Tasks()
    outbox = make_outbox(pipe, tasks)
    outbox.push_state(frame(5))
    outbox.push_state(frame(5))  # a takeover's checkpointed frame, already sent
    outbox.push_state(frame(4))
    outbox.push_state(frame(6))
    assert len(pipe.direct) == 2
    assert outbox.have_tick == 6
    await tasks.close()
