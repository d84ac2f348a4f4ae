"""Indexes over a worker's public rooms, so no request reads every room of the process.

``MatchIndex`` finds the rooms ``POST /matchmake`` may pick from the lists of the rooms that
have a free seat and hold one given ``meta`` item; ``RoomIds`` keeps the public room ids in
order, so ``GET /rooms`` reads one page. The registry keeps both current: rooms join them
when created and leave them when disposed, and a room tells the registry when its seats
change (``Room.on_seats``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickrelay.server.room import Room

_ABSENT = object()

Item = tuple[str, str, Hashable]
"""(logic, meta key, frozen meta value): the key of one list of open rooms."""


def frozen(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value that is equal exactly when the values are ``==``
    (objects as sets of items, arrays as tuples), so a dict lookup finds what ``==`` would."""
    if isinstance(value, dict):
        return frozenset((key, frozen(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(frozen(item) for item in value)
    return value


class _Entry:
    __slots__ = ("items", "open", "serial")

    def __init__(self, items: tuple[Item, ...], serial: int) -> None:
        self.items = items
        self.serial = serial
        self.open = False


class MatchIndex:
    """The public rooms with a free seat, by logic and by each (key, value) of their meta."""

    def __init__(self) -> None:
        self._entries: dict[Room, _Entry] = {}
        self._by_logic: dict[str, dict[Room, None]] = {}
        self._by_item: dict[Item, dict[Room, None]] = {}
        self._serials = itertools.count()

    def add(self, room: Room) -> None:
        if room.options.private:
            return
        logic = room.options.logic
        items = tuple((logic, key, frozen(value)) for key, value in room.options.meta.items())
        self._entries[room] = _Entry(items, next(self._serials))
        self.seats_changed(room)

    def remove(self, room: Room) -> None:
        entry = self._entries.pop(room, None)
        if entry is not None and entry.open:
            self._close(room, entry)

    def seats_changed(self, room: Room) -> None:
        """Move the room in or out of the lists of rooms with a free seat."""
        entry = self._entries.get(room)
        if entry is None:
            return
        free = room.seated < room.options.max_players
        if free and not entry.open:
            entry.open = True
            self._by_logic.setdefault(room.options.logic, {})[room] = None
            for item in entry.items:
                self._by_item.setdefault(item, {})[room] = None
        elif not free and entry.open:
            self._close(room, entry)

    def _close(self, room: Room, entry: _Entry) -> None:
        entry.open = False
        _discard(self._by_logic, room.options.logic, room)
        for item in entry.items:
            _discard(self._by_item, item, room)

    def find(self, logic: str, meta: dict[str, Any]) -> Room | None:
        """The fullest public room of ``logic`` with a free seat whose meta holds every item
        of ``meta`` (``==`` on each value), the earliest created among equals; else None.
        Reads only the shortest list of open rooms holding one of the asked items."""
        if meta:
            lists = [self._by_item.get((logic, key, frozen(value))) for key, value in meta.items()]
            if any(rooms is None for rooms in lists):
                return None
            shortest = min(lists, key=len)  # type: ignore[arg-type]
        else:
            shortest = self._by_logic.get(logic)
        if not shortest:
            return None
        matching = (room for room in shortest if _holds(room.options.meta, meta))
        return max(matching, key=self._rank, default=None)

    def _rank(self, room: Room) -> tuple[int, int]:
        return room.seated, -self._entries[room].serial


class RoomIds:
    """The public room ids in order: a page is a binary search and a slice."""

    def __init__(self) -> None:
        self._ids: list[str] = []

    def add(self, room_id: str) -> None:
        bisect.insort(self._ids, room_id)

    def remove(self, room_id: str) -> None:
        at = bisect.bisect_left(self._ids, room_id)
        if at < len(self._ids) and self._ids[at] == room_id:
            del self._ids[at]

    def page(self, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` ids that sort after ``after`` (from the first when None)."""
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        return self._ids[start : start + limit]


def _holds(meta: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(meta.get(key, _ABSENT) == value for key, value in wanted.items())


def _discard(lists: dict[Any, dict[Room, None]], key: Any, room: Room) -> None:
    rooms = lists.get(key)
    if rooms is not None:
        rooms.pop(room, None)
        if not rooms:
            del lists[key]
