"""Hostile frames on a real server (contract section 2): each one gets its close code or its
``error``, while two well-behaved players in the same room play on undisturbed.

The expected answer to every frame comes from a restatement of the contract's rules below
(``expect_frame``), decoded with the plain ``msgpack`` and ``json`` libraries: it shares no
code with the server's codec.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from typing import Any

import httpx
import msgpack
import pytest

from tests.helpers import state_until, wait_until
from tickrelay.client import ClientClosed, RoomClient, connect
from tickrelay.protocol import apply_patch

SEED = 20240611
FRAMES = 500
MAX_MESSAGE = 64 * 1024
MAX_DEPTH = 32  # the nesting bound (Limits.max_depth in DESIGN-NOTES; the message map is 1)
#: Frames per attacker connection, so that frames plus barrier pings stay inside the default
#: rate-limit bursts (60 events + pings, 120 inputs): a rate_limited answer would hide one.
ROTATE_AFTER = 25
GOOD_EVERY = 5  # a well-behaved input from each player every this many frames (< 120 in all)

Outcome = tuple[str, Any]  # ("close", code) | ("error", code) | ("ok", None)
CLOSE_4000: Outcome = ("close", 4000)
BAD: Outcome = ("error", "bad_message")
OK: Outcome = ("ok", None)

HUGE_HEADERS = [
    b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
    b"\xdf\xff\xff\xff\xff",  # map32 of 4 G pairs
    b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
    b"\xdd\xff\xff\xff\xff",  # array32 of 4 G items
    b"\xc9\xff\xff\xff\xff\x01",  # ext32 of 4 GiB
    b"\xda\xff\xff",  # str16
    b"\xde\xff\xff",  # map16
    b"\x82\xa1t\xa5event\xa1d\xc6\xff\xff\xff\xffabc",  # a bin32 inside a valid start
    b"\x83\xa1t\xa5input\xa3seq\x01\xa1d\xdf\xff\xff\xff\xff",  # map32 as d
]


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


# The contract, restated ----------------------------------------------------------------


def is_int64(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def json_safe(value: Any) -> bool:
    """Representable in JSON for JSON clients: no bin, NaN, infinity or int beyond int64."""
    if type(value) is int:
        return is_int64(value)
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(json_safe(item) for item in value)
    if type(value) is dict:
        return all(json_safe(item) for item in value.values())
    return value is None or type(value) in (str, bool)


def well_formed(value: Any, depth: int = 1) -> bool:
    """String keys everywhere, no extension types, nesting within the bound."""
    if type(value) in (dict, list):
        if depth > MAX_DEPTH:
            return False
        if type(value) is dict and not all(type(key) is str for key in value):
            return False
        items = value.values() if type(value) is dict else value
        return all(well_formed(item, depth + 1) for item in items)
    return type(value) in (str, int, float, bool, bytes, type(None))


def expect_message(message: Any, bar: int) -> tuple[Outcome, int]:
    """What the server answers a decoded message from a seated non-host player whose last
    accepted ``seq`` is ``bar``; also returns the new bar."""
    if type(message) is not dict or not well_formed(message):
        return CLOSE_4000, bar
    t = message.get("t")
    if type(t) is not str:
        return CLOSE_4000, bar
    if t == "input":
        seq, d, room = message.get("seq"), message.get("d"), message.get("room")
        if not (is_int64(seq) and seq >= 1):
            return BAD, bar
        if type(d) is not dict or not json_safe(d):
            return BAD, bar
        if room is not None and (type(room) is not dict or not json_safe(room)):
            return BAD, bar
        if seq <= bar:
            return ("error", "stale"), bar
        if room is not None:
            return ("error", "not_host"), bar
        return OK, seq
    if t == "event":
        to = message.get("to")
        if not json_safe(message.get("d")):
            return BAD, bar
        if to is not None and not (type(to) is list and all(type(p) is str for p in to)):
            return BAD, bar
        return OK, bar
    if t == "ping":
        ping_id, ct = message.get("id"), message.get("ct")
        if not is_int64(ping_id):
            return BAD, bar
        if ct is not None and not (is_int64(ct) or (type(ct) is float and math.isfinite(ct))):
            return BAD, bar
        return OK, bar
    if t == "leave":
        return ("close", 1000), bar
    return ("error", "unknown_type"), bar


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def expect_frame(codec: str, frame: bytes | str, bar: int) -> tuple[Outcome, int]:
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
    if size > MAX_MESSAGE:
        return ("close", 1009), bar
    try:
        if codec == "msgpack":
            if not isinstance(frame, bytes):
                return CLOSE_4000, bar
            message = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        else:
            if not isinstance(frame, str):
                return CLOSE_4000, bar
            message = json.loads(frame, parse_constant=_refuse_constant)
    except Exception:
        return CLOSE_4000, bar
    return expect_message(message, bar)


# Frame generation ------------------------------------------------------------------------


def wrong_values(codec: str) -> list[Any]:
    values: list[Any] = [
        None,
        [1, "a"],
        {"k": 1},
        "str",
        "",
        1.5,
        2.0,
        True,
        0,
        -1,
        float("nan"),
        float("inf"),
        nested(64),
        {"n": [[{"m": 1}]]},
    ]
    if codec == "msgpack":
        values += [2**64 - 1, -(2**63), b"\x00bytes", [b""]]
    else:
        values += [10**30, -(10**25)]
    return values


def encode(codec: str, message: Any) -> bytes | str:
    if codec == "msgpack":
        return msgpack.packb(message, use_bin_type=True)
    return json.dumps(message, allow_nan=True)


def templates(seq: int, target: str) -> list[dict[str, Any]]:
    return [
        {"t": "input", "seq": seq, "d": {"x": 1, "y": [1, 2], "z": {"w": None}}},
        {"t": "input", "seq": seq, "d": {"x": 2}, "room": {"r": 1}},
        {"t": "input", "seq": max(seq - 1, 1), "d": {"maybe": "stale"}},
        {"t": "event", "d": {"hello": "world"}, "to": [target]},
        {"t": "event", "d": [1, 2.5, "three"]},
        {"t": "ping", "id": 10**12, "ct": 12.5},
    ]


def random_text(rng: random.Random) -> str:
    alphabet = '{}[]":,0123456789.-+eE tlrufnsaigpdx'
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))


def make_frame(rng: random.Random, codec: str, seq: int, target: str) -> tuple[str, bytes | str]:
    """One hostile (or now and then valid) frame for an attacker speaking ``codec``."""
    kind = rng.choices(
        [
            "field",
            "drop",
            "random",
            "truncated",
            "huge-header",
            "deep",
            "oversize",
            "wrong-kind",
            "valid",
        ],
        weights=[40, 6, 14, 12, 6, 5, 2, 5, 10],
    )[0]
    message = rng.choice(templates(seq, target))
    if kind == "field":
        field = rng.choice(list(message))
        message[field] = rng.choice(wrong_values(codec))
        return kind, encode(codec, message)
    if kind == "drop":
        del message[rng.choice(list(message))]
        return kind, encode(codec, message)
    if kind == "random":
        if codec == "msgpack":
            return kind, rng.randbytes(rng.randrange(0, 48))
        return kind, random_text(rng)
    if kind == "truncated":
        frame = encode(codec, message)
        return kind, frame[: rng.randrange(0, len(frame))]
    if kind == "huge-header":
        header = rng.choice(HUGE_HEADERS)
        return kind, header if codec == "msgpack" else header.decode("latin-1")
    if kind == "deep":  # an event whose d is lists nested ``depth`` levels deep
        depth = rng.choice([16, MAX_DEPTH - 1, MAX_DEPTH, 100, 3000])
        if codec == "msgpack":
            return kind, b"\x82\xa1t\xa5event\xa1d" + b"\x91" * depth + b"\xc0"
        return kind, '{"t":"event","d":' + "[" * depth + "]" * depth + "}"
    if kind == "oversize":
        size = MAX_MESSAGE + rng.randrange(1, 2000)
        if codec == "msgpack":
            return kind, rng.randbytes(size)
        return kind, "x" * size
    if kind == "wrong-kind":
        frame = encode(codec, message)
        return kind, frame.encode() if isinstance(frame, str) else frame.decode("latin-1")
    return kind, encode(codec, message)


def fuzz_plan(rng: random.Random) -> list[tuple[str, int]]:
    """(codec, seed of the frame) in blocks of one codec, so attackers rotate rarely. A frame
    is built when it is sent, because a valid input needs the attacker's next ``seq``."""
    plan: list[tuple[str, int]] = []
    while len(plan) < FRAMES:
        codec = rng.choice(["msgpack", "json"])
        plan += [(codec, rng.getrandbits(64)) for _ in range(rng.randrange(10, 40))]
    return plan[:FRAMES]


# Running the attack ----------------------------------------------------------------------


async def observe(attacker: RoomClient) -> Outcome:
    """The server's answer to the last frame: a close, one error, or nothing."""
    try:
        await attacker.ping()
    except ClientClosed:
        await attacker.wait_closed()
        return ("close", attacker.close_code)
    errors = [msg for msg in attacker.drain() if msg["t"] == "error"]
    if not errors:
        return OK
    assert len(errors) == 1, errors
    return ("error", errors[0]["code"])


class Attacker:
    """The current attacking connection: a fresh one after a close, a codec change, or
    ``ROTATE_AFTER`` frames (leaving properly, so that no seat is kept for a resume)."""

    def __init__(self, url: str, room_id: str) -> None:
        self.url, self.room_id = url, room_id
        self.client: RoomClient | None = None
        self.codec = ""
        self.sent = 0
        self.bar = 0
        self.pids: list[str] = []

    async def ready(self, codec: str) -> RoomClient:
        client = self.client
        if client is not None and (
            client.closed or codec != self.codec or self.sent >= ROTATE_AFTER
        ):
            if not client.closed:
                assert await client.leave() == 1000
            client = None
        if client is None:
            client = await connect(self.url, self.room_id, codec=codec)
            self.client, self.codec, self.sent, self.bar = client, codec, 0, 0
            self.pids.append(client.pid)
        self.sent += 1
        return client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


class Player:
    """A well-behaved player: random small inputs, and the state they must add up to."""

    def __init__(self, client: RoomClient, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.expected: dict[str, Any] = {}

    async def play(self) -> None:
        rng = self.rng
        value = rng.choice(
            [
                rng.randrange(-1000, 1000),
                rng.random(),
                None,
                "s" * rng.randrange(5),
                [rng.randrange(9)] * rng.randrange(3),
                {"a": {"b": rng.random()}},
            ]
        )
        patch = {f"k{rng.randrange(6)}": value, "turn": self.client.seq + 1}
        self.expected = apply_patch(self.expected, patch)
        await self.client.send_input(patch)


async def in_sync(players: list[Player]) -> None:
    """Every player's mirror holds every player's latest ack and exactly its sent state."""
    for player in players:
        await state_until(
            player.client,
            lambda mirror: all(mirror.acks.get(p.client.pid) == p.client.seq for p in players),
        )
        for other in players:
            assert player.client.mirror.players[other.client.pid] == other.expected


async def test_hostile_frames_get_their_answer_while_the_room_plays_on(server, room_id):
    rng = random.Random(SEED)
    async with (
        await connect(server.ws, room_id) as alice_client,
        await connect(server.ws, room_id, codec="json") as bob_client,
    ):
        players = [
            Player(alice_client, random.Random(rng.random())),
            Player(bob_client, random.Random(rng.random())),
        ]
        error_leaves: set[str] = set()

        def watch(msg: dict[str, Any]) -> None:
            if msg["t"] == "leave" and msg["reason"] == "error":
                error_leaves.add(msg["pid"])

        alice_client.on_message = watch
        attacker = Attacker(server.ws, room_id)
        mismatches: list[tuple[int, str, str, Outcome, Outcome]] = []
        closed_with_error: set[str] = set()
        kinds: set[str] = set()
        try:
            for index, (codec, seed) in enumerate(fuzz_plan(rng)):
                client = await attacker.ready(codec)
                kind, frame = make_frame(
                    random.Random(seed), codec, attacker.bar + 1, alice_client.pid
                )
                kinds.add(kind)
                expected, bar = expect_frame(codec, frame, attacker.bar)
                await client.send_raw(frame)
                actual = await observe(client)
                if actual != expected:
                    mismatches.append((index, kind, repr(frame)[:120], expected, actual))
                if actual[0] == "close" and actual[1] in (4000, 1009):
                    closed_with_error.add(client.pid)
                attacker.bar = bar
                if index % GOOD_EVERY == 0:
                    for player in players:
                        await player.play()
                if index % 80 == 79:
                    await in_sync(players)
        finally:
            await attacker.close()
        assert mismatches == []
        assert kinds >= {"field", "random", "truncated", "huge-header", "deep", "oversize"}
        assert len(closed_with_error) > 50
        await in_sync(players)
        assert alice_client.mirror_errors == bob_client.mirror_errors == []
        await wait_until(lambda: closed_with_error <= error_leaves)
        assert error_leaves <= set(attacker.pids)


async def test_server_keeps_serving_after_hostile_frames(server, room_id):
    rng = random.Random(SEED + 1)
    async with await connect(server.ws, room_id) as alice:
        seq = await alice.send_input({"alive": True})
        for n in range(30):
            codec = "msgpack" if n % 2 else "json"
            async with await connect(server.ws, room_id, codec=codec) as attacker:
                _, frame = make_frame(rng, codec, 1, alice.pid)
                await attacker.send_raw(frame)
                with contextlib.suppress(ClientClosed):  # the first frame may have closed it
                    await attacker.send_raw(rng.choice(HUGE_HEADERS))
                assert await attacker.wait_closed() in (4000, 1009)
        async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
            assert (await http.get("/healthz")).status_code == 200
        async with await connect(server.ws, room_id, codec="json") as newcomer:
            snap = await newcomer.wait_for("snap")
            assert snap["s"]["players"][alice.pid] == {"alive": True}
            assert snap["acks"][alice.pid] == seq
        assert alice.mirror_errors == []


@pytest.mark.parametrize("header", HUGE_HEADERS, ids=[h[:6].hex() for h in HUGE_HEADERS])
async def test_msgpack_header_declaring_a_huge_length_closes_4000(server, room_id, header):
    async with (
        await connect(server.ws, room_id) as watcher,
        await connect(server.ws, room_id) as attacker,
    ):
        await state_until(watcher, lambda mirror: attacker.pid in mirror.players)
        await attacker.send_raw(header)
        assert await attacker.wait_closed() == 4000
        assert await watcher.wait_for("leave") == {
            "t": "leave",
            "pid": attacker.pid,
            "reason": "error",
        }
