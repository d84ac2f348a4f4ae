"""The envelope of a batch between two workers (sans-I/O).

A batch is what one worker sends another in one event-loop turn: a list of items (already
encoded room messages, commands, replies) behind a small header that names the sender,
the sender's boot (a worker that restarts starts a new link), the link's sequence number,
and how long its first item due at once waited on the sender (so a receiver can tell when
an owner ticked from when its states arrive, however long the owner's burst of steps took
before it published them). Items are opaque here; state frames inside them are bytes
encoded once per tick, which msgpack copies without looking inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

VERSION = 2  # 2: the header says how long the batch was held


class BadEnvelope(ValueError):
    """Not a batch of this version: dropped and counted, never raised into a room."""


@dataclass(frozen=True, slots=True)
class Batch:
    source: str  # the sending worker's id
    boot: int  # the sender's start: a new boot is a new link, its sequence starts again
    seq: int  # 1, 2, 3, ... per (source, boot, destination)
    items: list[Any]
    held: float  # seconds from the first item due at once to the publish (sender)


def pack_batch(source: str, boot: int, seq: int, items: list[Any], held: float) -> bytes:
    held_us = max(round(held * 1_000_000), 0)
    return msgpack.packb((VERSION, source, boot, seq, items, held_us), use_bin_type=True)


def unpack_batch(data: bytes) -> Batch:
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise BadEnvelope(f"undecodable batch: {exc}") from None
    if not isinstance(value, list) or len(value) != 6 or value[0] != VERSION:
        raise BadEnvelope(f"not a version-{VERSION} batch")
    _, source, boot, seq, items, held_us = value
    if not (
        isinstance(source, str) and type(boot) is int and type(seq) is int
        and seq > 0 and isinstance(items, list) and type(held_us) is int and held_us >= 0
    ):  # fmt: skip
        raise BadEnvelope("malformed batch header")
    return Batch(source, boot, seq, items, held_us / 1_000_000)
