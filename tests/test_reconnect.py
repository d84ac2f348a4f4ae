"""Auto-reconnect of the client over a network that fails (contract section 6, resume; the
reconnectable codes of section 8): the session goes RECONNECTING, resumes its seat, joins
afresh when the resume token is dead, and gives up or stops when told."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import TcpProxy, acked, state_until, wait_until
from tickrelay.client import SessionState, connect

#: Quick retries, so a test does not wait for the default backoff.
FAST = {"auto_reconnect": True, "reconnect_backoff": (0.05, 0.2)}


@pytest.fixture
def short_grace(servers):
    return servers.get(resume_grace=1.0)


async def test_a_lost_connection_is_resumed_on_the_same_seat(server, room_id):
    async with TcpProxy(server.port) as proxy, await connect(proxy.ws, room_id, **FAST) as alice:
        pid = alice.pid
        await alice.wait_for("welcome")
        proxy.cut()
        welcome = await alice.wait_for("welcome")
        assert (welcome["pid"], welcome["resumed"]) == (pid, True)
        assert alice.state is SessionState.OPEN
        assert (alice.reconnects, alice.resume_failures) == (1, 0)
        assert alice.close_history == [(1006, "")]


async def test_the_client_is_reconnecting_between_the_loss_and_the_welcome(server, room_id):
    slow = {"auto_reconnect": True, "reconnect_backoff": (0.5, 0.5)}
    async with TcpProxy(server.port) as proxy, await connect(proxy.ws, room_id, **slow) as alice:
        proxy.cut()
        await wait_until(lambda: alice.reconnecting)
        assert alice.state is SessionState.RECONNECTING
        assert (alice.connected, alice.closed, alice.close_code) == (False, False, 1006)
        await wait_until(lambda: alice.connected)
        assert alice.state is SessionState.OPEN


async def test_an_input_sent_while_reconnecting_is_applied_after_the_resume(server, room_id):
    async with TcpProxy(server.port) as proxy, await connect(proxy.ws, room_id, **FAST) as alice:
        proxy.cut()
        await wait_until(lambda: alice.reconnecting)
        seq = await alice.send_input({"x": 1})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"x": 1}


async def test_on_reconnect_is_called_with_the_resumed_client(server, room_id):
    called: list[tuple[str | None, bool]] = []
    async with (
        TcpProxy(server.port) as proxy,
        await connect(
            proxy.ws, room_id, on_reconnect=lambda c: called.append((c.pid, c.resumed)), **FAST
        ) as alice,
    ):
        proxy.cut()
        await wait_until(lambda: bool(called))
        assert called == [(alice.pid, True)]


async def test_a_dead_resume_token_is_followed_by_a_fresh_join(short_grace, room_id):
    backoff = {"auto_reconnect": True, "reconnect_backoff": (0.1, 0.2), "reconnect_attempts": 50}
    async with (
        TcpProxy(short_grace.port) as proxy,
        await connect(proxy.ws, room_id, **backoff) as alice,
    ):
        old_pid = alice.pid
        await proxy.stop()
        await wait_until(lambda: alice.reconnecting)
        await asyncio.sleep(1.5)  # past the server's resume grace: the token is dead
        await proxy.listen()
        await wait_until(lambda: alice.connected)
        assert alice.pid != old_pid
        assert (alice.resumed, alice.resume_failures, alice.reconnects) == (False, 1, 1)


async def test_reconnecting_gives_up_after_its_attempts_and_closes(server, room_id):
    few = {"auto_reconnect": True, "reconnect_backoff": (0.05, 0.1), "reconnect_attempts": 2}
    async with TcpProxy(server.port) as proxy, await connect(proxy.ws, room_id, **few) as alice:
        await proxy.stop()
        assert await alice.wait_closed() == 1006
        assert alice.state is SessionState.CLOSED
        assert alice.reconnects == 0
        assert alice.close_reason.startswith("reconnect failed")


async def test_close_during_a_reconnect_ends_it(server, room_id):
    slow = {"auto_reconnect": True, "reconnect_backoff": (5.0, 5.0)}
    async with TcpProxy(server.port) as proxy, await connect(proxy.ws, room_id, **slow) as alice:
        await proxy.stop()
        await wait_until(lambda: alice.reconnecting)
        await asyncio.wait_for(alice.close(), 1.0)
        assert alice.state is SessionState.CLOSED


async def test_without_auto_reconnect_a_lost_connection_closes_the_client(server, room_id):
    async with TcpProxy(server.port) as proxy, await connect(proxy.ws, room_id) as alice:
        proxy.cut()
        assert await alice.wait_closed() == 1006
        assert alice.state is SessionState.CLOSED
        assert alice.reconnects == 0
