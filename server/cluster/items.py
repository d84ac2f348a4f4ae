"""What workers say to each other about rooms: the items inside batches (sans-I/O).

Items are plain tuples whose first element is the ``Item`` kind (a small int on the
wire). A worker whose client is in a room owned elsewhere *forwards* (JOIN, INPUT, EVENT,
LEAVE, ENDED, RESYNC); the owner *fans out* to each worker with members once, not once
per client (STATE, SNAP, PIN, RELIABLE, CLOSE) and answers joins (JOINED, REFUSED).
Encoded messages travel as the bytes the owner encoded once; members are named by ``mid``,
a number the member's worker gave its connection, so one player's old and new connections
on one worker are never confused. Room items from the owner carry the room's epoch:
anything under an older epoch than the one a worker knows is dropped.

Shapes (``room`` is the room id):

- JOIN (room, mid, pid | None, spectator, resume | None, spectate_only)
- INPUT (room, mid, seq, d, room_patch | None) / EVENT (room, mid, d, to | None)
- LEAVE (room, mid) / ENDED (room, mid, leave_reason | None: None is a drop)
- RESYNC (room): the sender's mirror lost the chain; the owner answers with a SNAP
- JOINED (room, epoch, mid, pid, tick rate) / REFUSED (room, mid, code, reason)
- STATE (room, epoch, packed delta, tick, base, packed snap | None) / SNAP (room, epoch,
  packed snap, tick): for every member; a STATE with its snap is a keyframe (``Peer``)
- PIN (room, epoch, mid): give ``mid`` the frame you hold (a join between two ticks)
- RELIABLE (room, epoch, packed message, [mid, ...]) / CLOSE (room, epoch, mid, code, reason)
- ADOPT (room, mid, pid): after a takeover, a member still connected to the sender takes
  its place back in the new owner's room (no welcome; its token is unchanged)
- TAKEN (room, epoch): the sender took the room over: send its members' ADOPTs there
- HANDOVER (room, epoch): the sender (draining) saved and released the room: take it over
- ASK (request id, op, room, arg) / ANSWER (request id, status, value): operator requests
  (kick, delete, describe) forwarded to the owner
"""

from __future__ import annotations

from enum import IntEnum


class Item(IntEnum):
    JOIN = 1
    INPUT = 2
    EVENT = 3
    LEAVE = 4
    ENDED = 5
    RESYNC = 6
    JOINED = 10
    REFUSED = 11
    STATE = 12
    SNAP = 13
    PIN = 14
    RELIABLE = 15
    CLOSE = 16
    ADOPT = 17
    TAKEN = 18
    HANDOVER = 19
    ASK = 20
    ANSWER = 21


# Module-level names: building an item is a tuple display, no attribute lookups.
JOIN, INPUT, EVENT, LEAVE, ENDED, RESYNC = (
    Item.JOIN, Item.INPUT, Item.EVENT, Item.LEAVE, Item.ENDED, Item.RESYNC,
)  # fmt: skip
JOINED, REFUSED, STATE, SNAP, PIN, RELIABLE, CLOSE = (
    Item.JOINED, Item.REFUSED, Item.STATE, Item.SNAP, Item.PIN, Item.RELIABLE, Item.CLOSE,
)  # fmt: skip
ADOPT, TAKEN, HANDOVER = Item.ADOPT, Item.TAKEN, Item.HANDOVER
ASK, ANSWER = Item.ASK, Item.ANSWER
