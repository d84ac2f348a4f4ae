"""The room registry on a real event loop, without sockets (the room core may be tested so).

The idle-disposal race lives between two steps of the event loop, which no client can aim
at from outside: the test joins from inside the idle timer's own callback, which is exactly
the moment a join landing "in between" would be processed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.room_core_fakes import FakeLink
from tickrelay.server.backplane import MemoryBackplane
from tickrelay.server.metrics import Metrics
from tickrelay.server.registry import RoomRegistry
from tickrelay.server.room import Room, RoomStatus
from tickrelay.server.settings import Settings


def registry_with(**settings: Any) -> RoomRegistry:
    return RoomRegistry(Settings(**settings), Metrics(), MemoryBackplane())


async def test_a_join_landing_right_after_the_idle_timer_fired_is_not_closed_4004():
    registry = registry_with(idle_timeout=0.01)
    link = FakeLink()
    joined: list[Room] = []
    on_empty = registry._room_idle

    def idle_then_join(room: Room) -> None:
        on_empty(room)  # the registry decides, as it does when the timer fires
        target = registry.get(room.id) or registry.create(room.id)  # the endpoint's join
        target.join(link, "late", spectator=False)
        joined.append(target)

    registry._room_idle = idle_then_join  # type: ignore[method-assign]
    registry.create("racing")
    async with asyncio.timeout(2):
        while not joined:
            await asyncio.sleep(0.01)
    for _ in range(5):
        await asyncio.sleep(0)  # let any disposal task run
    try:
        assert link.closed is None
        assert registry.get("racing") is joined[0]
        assert joined[0].status is RoomStatus.OPEN
    finally:
        await registry.close()


# Matchmaking through the index -------------------------------------------------------------


def seat(room: Room, count: int) -> None:
    for n in range(count):
        room.join(FakeLink(), f"{room.id}-p{n}", spectator=False)


async def test_matchmake_picks_the_fullest_matching_room_and_the_earliest_among_equals():
    registry = registry_with()
    try:
        rooms = [
            registry.create(name, registry.default_options(meta={"mode": "duel", "n": i}))
            for i, name in enumerate(["one", "two", "three", "four"])
        ]
        registry.create("other", registry.default_options(meta={"mode": "race"}))
        seat(rooms[1], 2)
        seat(rooms[2], 2)
        assert registry.matchmake("relay", {"mode": "duel"}) is rooms[1]
    finally:
        await registry.close()


async def test_matchmake_matches_meta_values_as_python_equality_does():
    registry = registry_with()
    try:
        room = registry.create("r", registry.default_options(meta={"level": 1, "tags": ["a"]}))
        assert registry.matchmake("relay", {"level": 1.0}) is room
        assert registry.matchmake("relay", {"tags": ["a"], "level": True}) is room
        assert registry.matchmake("relay", {"level": 2}) is not room
    finally:
        await registry.close()


async def test_matchmake_leaves_out_full_and_private_rooms():
    registry = registry_with()
    try:
        full = registry.create("full", registry.default_options(max_players=1))
        seat(full, 1)
        registry.create("private", registry.default_options(private=True))
        found = registry.matchmake("relay", {})
        assert found.id not in ("full", "private")
        assert registry.matchmake("relay", {}) is found
    finally:
        await registry.close()
