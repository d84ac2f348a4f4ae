"""A worker that stops tells its players to come back (1012), rather than just vanishing."""

from __future__ import annotations

import signal

from tickrelay.client import connect


async def test_a_stopping_server_closes_players_and_spectators_with_1012(servers, room_id):
    server = servers.fresh()
    async with (
        await connect(server.ws, room_id) as player,
        await connect(server.ws, room_id, spectate=True) as spectator,
    ):
        server.process.send_signal(signal.SIGTERM)
        assert await player.wait_closed(timeout=10) == 1012
        assert await spectator.wait_closed(timeout=10) == 1012
    # Ended on its own, well before a kill: uvicorn re-raises the SIGTERM it handled.
    assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
