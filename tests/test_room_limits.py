"""What rooms may cost a server (issue 8, item 3): an idle room costs no tick, rooms per
process and room creations per client address are bounded, the listing comes in pages."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

STATS_SETTLE = 0.5
"""Seconds to let rooms run before reading the tick counter: ten ticks at the default rate."""


async def total_ticks(http: httpx.AsyncClient) -> int:
    return (await http.get("/stats")).json()["tick"]["ticks"]


async def create_rooms(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
    """``count`` rooms through ``POST /rooms``, a few dozen requests in flight at a time."""
    for start in range(0, count, 50):
        answers = await asyncio.gather(
            *(http.post("/rooms", json={}, headers=headers) for _ in range(start, start + 50))
        )
        assert [a.status_code for a in answers] == [201] * len(answers)


# An idle room costs nothing ---------------------------------------------------------------


async def test_a_thousand_empty_rooms_run_no_tick(servers):
    server = servers.fresh()
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        await create_rooms(http, server.admin_headers(), 1000)
        await asyncio.sleep(STATS_SETTLE)
        stats: dict[str, Any] = (await http.get("/stats")).json()
    assert stats["rooms"] == 1000
    assert stats["tick"]["ticks"] == 0
