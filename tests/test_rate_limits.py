"""Rate limits (contract section 4): token buckets for inputs and for events + pings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers import errors_in, state_until
from tickrelay.client import ClientClosed, RoomClient, connect

LIMITS = {
    "input_rate": 5,
    "input_burst": 5,
    "event_rate": 5,
    "event_burst": 5,
    "flood_close_after": 2,
}


@pytest.fixture
def limited(servers):
    """A server with buckets of 5 per second, bursts of 5, and a 2 s flood rule."""
    return servers.get(**LIMITS)


async def barrier(client: RoomClient) -> None:
    """Everything the server answered before this point is now in the client's queue."""
    await client.ping()


async def flood_until_closed(
    flooder: RoomClient, send: Callable[[], Awaitable[Any]], pause: float
) -> int | None:
    """Call ``send`` every ``pause`` seconds until the server closes; its close code."""
    async with asyncio.timeout(10):
        try:
            while True:
                await send()
                await asyncio.sleep(pause)
        except ClientClosed:
            pass
        return await flooder.wait_closed()


async def test_inputs_beyond_the_burst_get_a_single_rate_limited_error(limited, room_id):
    async with await connect(limited.ws, room_id) as alice:
        await alice.wait_for("snap")
        for n in range(1, 21):
            await alice.send_input({"n": n})
        await barrier(alice)
        refused = errors_in(alice.drain())
        assert refused == [
            {"t": "error", "code": "rate_limited", "msg": refused[0]["msg"], "ref": 6}
        ]


async def test_refused_inputs_do_not_move_the_ack(limited, room_id):
    async with await connect(limited.ws, room_id) as alice:
        await alice.wait_for("snap")
        seen_acks: set[int] = set()
        alice.on_message = lambda msg: seen_acks.add(alice.mirror.acks.get(alice.pid, 0))
        for n in range(1, 9):
            await alice.send_input({"n": n})
        await state_until(alice, lambda mirror: mirror.acks[alice.pid] == 5)
        assert alice.mirror.players[alice.pid] == {"n": 5}
        await asyncio.sleep(0.5)  # the bucket earns tokens back at 5 per second
        seq = await alice.send_input({"n": 9})
        await state_until(alice, lambda mirror: mirror.acks[alice.pid] == seq)
        assert alice.mirror.players[alice.pid] == {"n": 9}
        assert seen_acks.isdisjoint({6, 7, 8})


async def test_a_seq_refused_by_the_rate_limit_may_be_sent_again(limited, room_id):
    async with await connect(limited.ws, room_id) as alice:
        await alice.wait_for("snap")
        for n in range(1, 7):
            await alice.send_input({"n": n})
        error = await alice.wait_for("error")
        assert (error["code"], error["ref"]) == ("rate_limited", 6)
        await asyncio.sleep(0.5)  # the bucket earns tokens back at 5 per second
        await alice.send_message({"t": "input", "seq": 6, "d": {"n": "again"}})
        await state_until(alice, lambda mirror: mirror.acks[alice.pid] == 6)
        assert alice.mirror.players[alice.pid] == {"n": "again"}
        assert errors_in(alice.drain()) == []


async def test_pings_are_refused_once_events_have_emptied_their_shared_bucket(limited, room_id):
    async with (
        await connect(limited.ws, room_id) as alice,
        await connect(limited.ws, room_id) as bob,
    ):
        for n in range(5):
            await alice.send_event({"n": n})
        await alice.send_message({"t": "ping", "id": 1})
        error = await alice.wait_for("error")
        assert (error["code"], error["ref"]) == ("rate_limited", "ping")
        for n in range(5):
            assert (await bob.wait_for("event"))["d"] == {"n": n}
        assert [msg for msg in alice.drain() if msg["t"] == "pong"] == []


async def test_events_are_refused_once_pings_have_emptied_their_shared_bucket(limited, room_id):
    async with (
        await connect(limited.ws, room_id) as alice,
        await connect(limited.ws, room_id) as bob,
    ):
        for n in range(5):
            await alice.send_message({"t": "ping", "id": n})
        await alice.send_event({"late": True})
        error = await alice.wait_for("error")
        assert (error["code"], error["ref"]) == ("rate_limited", "event")
        await bob.ping()  # bob's own bucket is untouched
        assert [msg for msg in bob.drain() if msg["t"] == "event"] == []


async def test_inputs_are_accepted_while_the_event_bucket_is_empty(limited, room_id):
    async with await connect(limited.ws, room_id) as alice:
        await alice.wait_for("snap")
        for n in range(6):
            await alice.send_event({"n": n})
        error = await alice.wait_for("error")
        assert error["ref"] == "event"
        seq = await alice.send_input({"moved": True})
        await state_until(alice, lambda mirror: mirror.acks[alice.pid] == seq)
        assert errors_in(alice.drain()) == []


async def test_a_client_flooding_for_flood_close_after_seconds_is_closed_1008_and_leaves(
    limited, room_id
):
    async with (
        await connect(limited.ws, room_id) as flooder,
        await connect(limited.ws, room_id) as observer,
    ):
        code = await flood_until_closed(
            flooder, lambda: flooder.send_input({"spam": flooder.seq}), 0.02
        )
        leave = await observer.wait_for("leave")
        assert code == 1008
        assert leave == {"t": "leave", "pid": flooder.pid, "reason": "error"}
        told = errors_in(flooder.drain())
        assert [e["code"] for e in told] == ["rate_limited", "rate_limited"]


async def test_a_client_within_its_rates_is_never_refused(limited, room_id):
    async with (
        await connect(limited.ws, room_id) as alice,
        await connect(limited.ws, room_id) as bob,
    ):
        await alice.wait_for("snap")
        for n in range(10):
            seq = await alice.send_input({"n": n})
            await alice.send_event({"n": n})
            await asyncio.sleep(0.25)  # 4 per second in each bucket: under the rate of 5
        await alice.ping()
        await state_until(alice, lambda mirror: mirror.acks[alice.pid] == seq)
        assert errors_in(alice.drain()) == []
        for n in range(10):
            assert (await bob.wait_for("event"))["d"] == {"n": n}


# The byte budget (issue 8, item 8) -----------------------------------------------------

BYTES = {"message_bytes_rate": 1024, "message_bytes_burst": 64 * 1024, "flood_close_after": 2}
"""64 KiB at once, then 1 KiB a second: a second big message in a test is always over."""

BIG = "x" * 40_000


@pytest.fixture
def byte_limited(servers):
    return servers.get(**BYTES)


async def test_a_message_beyond_the_byte_budget_is_refused_rate_limited_and_not_relayed(
    byte_limited, room_id
):
    async with (
        await connect(byte_limited.ws, room_id) as alice,
        await connect(byte_limited.ws, room_id) as bob,
    ):
        await alice.send_event({"n": 1, "blob": BIG})
        await alice.send_event({"n": 2, "blob": BIG})
        await alice.send_event({"n": 3})
        error = await alice.wait_for("error")
        assert error == {"t": "error", "code": "rate_limited", "msg": error["msg"]}  # no ref
        assert [(await bob.wait_for("event"))["d"]["n"] for _ in range(2)] == [1, 3]


async def test_a_client_over_its_byte_budget_for_flood_close_after_seconds_is_closed_1008(
    byte_limited, room_id
):
    async with (
        await connect(byte_limited.ws, room_id) as flooder,
        await connect(byte_limited.ws, room_id) as observer,
    ):
        # 10 events a second: well under the event rate, far over the byte budget
        code = await flood_until_closed(flooder, lambda: flooder.send_event({"blob": BIG}), 0.1)
        leave = await observer.wait_for("leave")
    assert code == 1008
    assert leave == {"t": "leave", "pid": flooder.pid, "reason": "error"}


async def test_a_leave_gets_through_an_exhausted_byte_budget(byte_limited, room_id):
    async with (
        await connect(byte_limited.ws, room_id) as alice,
        await connect(byte_limited.ws, room_id) as bob,
    ):
        await alice.send_event({"blob": BIG})
        await alice.send_event({"blob": BIG})
        await alice.wait_for("error")
        assert await alice.leave() == 1000
        assert await bob.wait_for("leave") == {"t": "leave", "pid": alice.pid, "reason": "left"}
