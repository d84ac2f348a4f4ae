"""Forwarded inputs leave just ahead of the owner's next tick (sans-I/O: times by hand).

The owner publishes a room's state right after its tick, so a member worker reads the
owner's tick times off the states' arrivals; the inputs of one tick then share one publish
instead of leaving every few milliseconds.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

import tickrelay.protocol.messages as m
from tickrelay.protocol import Input
from tickrelay.server.cluster.items import INPUT
from tickrelay.server.cluster.owner_ticks import CREEP, OwnerTicks
from tickrelay.server.cluster.remote_room import RemoteRoom, RemoteSeat

PERIOD = 0.05  # 20 Hz
LEAD = 0.003


def test_nothing_is_due_before_the_first_state() -> None:
    assert OwnerTicks(20).due(100.0, LEAD) is None


def test_an_input_is_due_a_lead_before_the_tick_after_the_last_state() -> None:
    ticks = OwnerTicks(20)
    ticks.state_arrived(100.0)
    assert ticks.due(100.010, LEAD) == pytest.approx(100.0 + PERIOD - LEAD)


def test_an_input_too_late_for_the_next_tick_is_due_before_the_one_after() -> None:
    ticks = OwnerTicks(20)
    ticks.state_arrived(100.0)
    assert ticks.due(100.048, LEAD) == pytest.approx(100.0 + 2 * PERIOD - LEAD)


def test_ticks_without_a_state_are_still_predicted() -> None:
    """A tick that changed nothing publishes nothing; the schedule goes on regardless."""
    ticks = OwnerTicks(20)
    ticks.state_arrived(100.0)
    assert ticks.due(100.0 + 10 * PERIOD + 0.01, LEAD) == pytest.approx(100.0 + 11 * PERIOD - LEAD)


def test_an_earlier_state_moves_the_estimate_to_it() -> None:
    ticks = OwnerTicks(20)
    ticks.state_arrived(100.004)  # read late: the loop was busy
    ticks.state_arrived(100.0 + PERIOD)
    assert ticks.due(100.06, LEAD) == pytest.approx(100.0 + 2 * PERIOD - LEAD)


def test_a_late_state_moves_the_estimate_by_no_more_than_the_creep() -> None:
    ticks = OwnerTicks(20)
    ticks.state_arrived(100.0)
    ticks.state_arrived(100.0 + PERIOD + 0.010)  # read 10 ms late
    assert ticks.due(100.06, LEAD) == pytest.approx(100.0 + 2 * PERIOD + CREEP - LEAD)


class Recorder:
    """What a remote room hands the bus, and a clock set by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.held = 0.0  # how long the owner held the batch being read
        self.sent: list[Any] = []
        self.sent_by: list[tuple[Any, float]] = []

    def send(self, worker: str, item: Any) -> None:
        self.sent.append(item)

    def send_by(self, worker: str, item: Any, due: float) -> None:
        self.sent_by.append((item, due))


def remote_room(recorder: Recorder) -> RemoteRoom:
    return RemoteRoom(
        "r1", "owner", 1, recorder.send, recorder.send_by, lambda: recorder.now,
        lambda: recorder.now - recorder.held, lambda room: None, input_lead=LEAD,
    )  # fmt: skip


def owner_ticked(room: RemoteRoom, tick: int) -> None:
    room.snap(msgpack.packb(m.snap(tick, 1, {"players": {}, "room": {}}, {})), tick)


def test_a_remote_room_sends_inputs_as_they_come_until_it_knows_the_rate() -> None:
    recorder = Recorder()
    room = remote_room(recorder)
    owner_ticked(room, 1)
    room.receive_input(RemoteSeat(7, "p1"), Input(1, {"x": 1}))
    assert [item[0] for item in recorder.sent] == [INPUT]
    assert recorder.sent_by == []


def test_a_remote_rooms_inputs_of_one_tick_are_due_together_before_it() -> None:
    recorder = Recorder()
    room = remote_room(recorder)
    room.joined(7, "p1", 20)
    owner_ticked(room, 1)
    for n, at in enumerate((100.005, 100.020, 100.040)):
        recorder.now = at
        room.receive_input(RemoteSeat(7, "p1"), Input(n + 1, {"x": n}))
    recorder.now = 100.049  # past the lead: this one is for the tick after
    room.receive_input(RemoteSeat(7, "p1"), Input(4, {"x": 4}))
    dues = [due for _, due in recorder.sent_by]
    assert dues[:3] == [pytest.approx(100.0 + PERIOD - LEAD)] * 3
    assert dues[3] == pytest.approx(100.0 + 2 * PERIOD - LEAD)
    assert [item[3] for item, _ in recorder.sent_by] == [1, 2, 3, 4]


def test_a_state_held_by_its_owner_times_the_tick_from_when_its_batch_began() -> None:
    """An owner publishes its rooms' states once all its rooms have stepped: the tick was
    when the batch began there, not when it arrived here."""
    recorder = Recorder()
    room = remote_room(recorder)
    room.joined(7, "p1", 20)
    recorder.now, recorder.held = 100.006, 0.006  # six milliseconds of steps on the owner
    owner_ticked(room, 1)
    recorder.now, recorder.held = 100.010, 0.0
    room.receive_input(RemoteSeat(7, "p1"), Input(1, {"x": 1}))
    assert [due for _, due in recorder.sent_by] == [pytest.approx(100.0 + PERIOD - LEAD)]


def test_a_new_owner_is_timed_afresh() -> None:
    """After a takeover the room ticks on the new owner's schedule, unknown until its
    first state: inputs leave as they come meanwhile."""
    recorder = Recorder()
    room = remote_room(recorder)
    room.joined(7, "p1", 20)
    owner_ticked(room, 1)
    room.moved_to("new-owner", 2)
    recorder.sent.clear()
    room.receive_input(RemoteSeat(7, "p1"), Input(1, {"x": 1}))
    assert [item[0] for item in recorder.sent] == [INPUT]
