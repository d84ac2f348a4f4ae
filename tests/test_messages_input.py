"""`input` on real servers (contract section 2, client to server): merge patches of the
sender's own state, applied in arrival order, acked by `seq`."""

from __future__ import annotations

from typing import Any

from tests.helpers import acked, nested, state_until
from tickrelay.client import connect
from tickrelay.protocol import apply_patch


async def test_input_merges_nested_maps_into_the_senders_state(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_input({"pos": {"x": 1, "y": 2}, "hp": 10})
        seq = await alice.send_input({"pos": {"y": 5, "z": {"w": 1}}})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"pos": {"x": 1, "y": 5, "z": {"w": 1}}, "hp": 10}


async def test_input_null_deletes_a_key(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_input({"a": 1, "b": {"c": 2, "d": 3}})
        seq = await alice.send_input({"a": None, "b": {"c": None}, "missing": None})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"b": {"d": 3}}


async def test_input_replaces_arrays_whole(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        await alice.send_input({"items": [1, 2, 3], "grid": [[0, 0], [0, 0]]})
        seq = await alice.send_input({"items": [9], "grid": [[1]]})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"items": [9], "grid": [[1]]}


async def test_every_input_is_applied_in_arrival_order(server, room_id):
    """However the inputs fall into ticks, the state at ack n is exactly inputs 1..n applied."""
    patches = [{"x": n, f"k{n}": n, "last": None if n % 2 else n} for n in range(1, 31)]
    expected = [{}]
    for patch in patches:
        expected.append(apply_patch(expected[-1], patch))
    async with await connect(server.ws, room_id) as alice:
        seen: list[tuple[int, Any]] = []
        alice.on_message = lambda msg: (
            msg["t"] in ("snap", "delta")
            and seen.append((alice.mirror.acks[alice.pid], alice.mirror.players[alice.pid]))
        )
        for patch in patches:
            await alice.send_input(patch)
        await state_until(alice, acked(alice, len(patches)))
        assert alice.mirror.players[alice.pid] == expected[-1]
        assert all(state == expected[ack] for ack, state in seen)


async def test_ack_is_the_seq_of_the_last_applied_input_even_with_gaps(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        acks: set[int] = set()
        alice.on_message = lambda msg: acks.add(alice.mirror.acks.get(alice.pid, 0))
        await alice.send_message({"t": "input", "seq": 3, "d": {"a": 1}})
        await alice.send_message({"t": "input", "seq": 10, "d": {"a": 2}})
        await state_until(alice, acked(alice, 10))
        assert acks <= {0, 3, 10}
        assert alice.mirror.players[alice.pid] == {"a": 2}


async def test_json_and_msgpack_players_see_the_same_inputs(server, room_id):
    async with (
        await connect(server.ws, room_id, codec="json") as alice,
        await connect(server.ws, room_id) as bob,
    ):
        seq = await alice.send_input({"name": "ünï", "v": [1.5, -2, True, None, {"k": "v"}]})
        await state_until(bob, acked(bob, seq, alice.pid))
        assert bob.mirror.players[alice.pid] == {
            "name": "ünï",
            "v": [1.5, -2, True, None, {"k": "v"}],
        }
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players == bob.mirror.players


async def test_moderately_nested_input_is_accepted(server, room_id):
    async with await connect(server.ws, room_id) as alice:
        seq = await alice.send_input({"deep": nested(8)})
        await state_until(alice, acked(alice, seq))
        assert alice.mirror.players[alice.pid] == {"deep": nested(8)}
