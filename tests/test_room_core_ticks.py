"""The tick schedule (tick n at t0 + n / rate; aligned, t0 on the grid of the period), on a
manual clock."""

from __future__ import annotations

import asyncio

from tests.room_core_fakes import ManualClock
from tickrelay.server.metrics import TickStats
from tickrelay.server.tick import Phase, TickLoop

RATE = 16  # a power of two: tick times are exact floats
PERIOD = 1 / RATE


class Recorder:
    """A room stand-in: records when each tick ran; ``work`` is the time each step takes."""

    def __init__(self, clock: ManualClock, busy: bool = True, work: float = 0.0) -> None:
        self.clock = clock
        self.busy = busy
        self.work = work
        self.ran: list[tuple[int, float, float]] = []  # (tick, time, dt)

    def step(self, tick: int, dt: float) -> None:
        self.ran.append((tick, self.clock.now(), dt))
        self.clock.spend(self.work)

    def is_busy(self) -> bool:
        return self.busy


def _loop(busy: bool = True, work: float = 0.0) -> tuple[ManualClock, Recorder, TickLoop]:
    clock = ManualClock(start=0.0)
    recorder = Recorder(clock, busy, work)
    ticks = TickLoop(RATE, recorder.step, recorder.is_busy, TickStats(), clock)
    ticks.start()
    return clock, recorder, ticks


def test_tick_n_runs_at_t0_plus_n_periods() -> None:
    clock, recorder, _ = _loop()
    clock.advance(10 * PERIOD)
    assert [(tick, at) for tick, at, _ in recorder.ran] == [(n, n * PERIOD) for n in range(1, 11)]


def test_the_time_a_step_takes_does_not_shift_the_next_ticks() -> None:
    clock, recorder, _ = _loop(work=PERIOD / 3)
    clock.advance(10 * PERIOD)
    assert [at for _, at, _ in recorder.ran] == [n * PERIOD for n in range(1, 11)]


def shared_loop(clock: ManualClock, phase: Phase, recorder: Recorder) -> TickLoop:
    """A cluster room whose states go to other workers."""
    loop = TickLoop(RATE, recorder.step, recorder.is_busy, TickStats(), clock, phase)
    loop.share()
    loop.start()
    return loop


def instants(recorder: Recorder) -> set[float]:
    """Where in the period the room ticked (fractions of it)."""
    return {round((at % PERIOD) / PERIOD, 6) for _, at, _ in recorder.ran}


def test_shared_rooms_made_at_different_times_tick_at_the_same_instants() -> None:
    clock = ManualClock(start=100.0 + PERIOD * 0.01)
    phase = Phase(clock, 0.5)
    first, second = Recorder(clock), Recorder(clock)
    shared_loop(clock, phase, first)
    clock.advance(PERIOD * 0.8)
    shared_loop(clock, phase, second)
    clock.advance(5 * PERIOD)
    # One wake-up a period for all the shared rooms of a rate (one publish of their states).
    assert [at for _, at, _ in second.ran] == [at for _, at, _ in first.ran][-len(second.ran) :]
    assert len(second.ran) >= 5


def test_a_shared_room_ticks_the_phases_fraction_into_the_period() -> None:
    clock = ManualClock(start=100.0 + PERIOD * 0.3)
    recorder = Recorder(clock)
    shared_loop(clock, Phase(clock, 0.25), recorder)
    clock.advance(3 * PERIOD)
    assert instants(recorder) == {0.25}


def test_rooms_nobody_elsewhere_watches_tick_at_two_instants_a_period() -> None:
    """Their burst halved: they publish nothing per tick, so sharing one instant buys
    nothing, and one burst of every room of a worker costs its players latency."""
    clock = ManualClock(start=100.0)
    phase = Phase(clock, 0.25)
    recorders = [Recorder(clock) for _ in range(4)]
    for recorder in recorders:
        TickLoop(RATE, recorder.step, recorder.is_busy, TickStats(), clock, phase).start()
        clock.advance(PERIOD / 4)
    clock.advance(3 * PERIOD)
    assert set().union(*(instants(recorder) for recorder in recorders)) == {0.25, 0.75}


def test_a_room_that_becomes_shared_moves_to_the_shared_instant_with_its_ticks_growing() -> None:
    clock = ManualClock(start=100.0 + PERIOD * 0.8)
    phase = Phase(clock, 0.25)
    recorder = Recorder(clock)
    loop = TickLoop(RATE, recorder.step, recorder.is_busy, TickStats(), clock, phase)
    loop.start()
    clock.advance(2 * PERIOD)
    assert instants(recorder) == {0.75}
    ticked = len(recorder.ran)
    loop.share()
    clock.advance(3 * PERIOD)
    assert {round((at % PERIOD) / PERIOD, 6) for _, at, _ in recorder.ran[ticked:]} == {0.25}
    ticks = [tick for tick, _, _ in recorder.ran]
    assert ticks == sorted(set(ticks))


def test_sharing_a_shared_room_again_changes_nothing() -> None:
    clock = ManualClock(start=100.0)
    phase = Phase(clock, 0.25)
    recorder = Recorder(clock)
    loop = shared_loop(clock, phase, recorder)
    clock.advance(2 * PERIOD)
    for _ in range(3):
        loop.share()
    clock.advance(2 * PERIOD)
    assert [tick for tick, _, _ in recorder.ran] == [1, 2, 3, 4]


def test_the_rooms_of_a_phase_share_one_loop_timer_per_instant() -> None:
    """uvloop's timers have millisecond resolution: a timer per room would fire the rooms
    of one instant over two loop turns, and their states would leave in two publishes."""
    clock = ManualClock(start=100.0)
    phase = Phase(clock, 0.5)
    recorders = [Recorder(clock) for _ in range(3)]
    for recorder in recorders:
        shared_loop(clock, phase, recorder)
        clock.spend(PERIOD * 0.4)  # made before and after an instant of the phase
    clock.advance(PERIOD)
    assert clock.pending == 1  # each room's next tick
    clock.advance(2 * PERIOD)
    assert clock.pending == 1
    assert len({tuple(at for _, at, _ in recorder.ran[-2:]) for recorder in recorders}) == 1


def test_a_stopped_room_of_a_phase_no_longer_ticks() -> None:
    clock = ManualClock(start=100.0)
    phase = Phase(clock, 0.5)
    stopped, running = Recorder(clock), Recorder(clock)
    loop = TickLoop(RATE, stopped.step, stopped.is_busy, TickStats(), clock, phase)
    loop.start()
    TickLoop(RATE, running.step, running.is_busy, TickStats(), clock, phase).start()
    asyncio.run(loop.stop())
    clock.advance(3 * PERIOD)
    assert stopped.ran == []
    assert len(running.ran) == 3


def test_unaligned_rooms_tick_from_their_own_creation() -> None:
    clock = ManualClock(start=100.0 + PERIOD * 0.25)
    recorder = Recorder(clock)
    TickLoop(RATE, recorder.step, recorder.is_busy, TickStats(), clock).start()
    clock.advance(2 * PERIOD)
    assert [at for _, at, _ in recorder.ran] == [100.0 + PERIOD * 1.25, 100.0 + PERIOD * 2.25]


def test_a_passive_room_schedules_no_tick_until_woken() -> None:
    clock, recorder, _ = _loop(busy=False)
    assert clock.pending == 0
    clock.advance(5.0)
    assert recorder.ran == []


def test_a_woken_room_ticks_at_the_next_boundary_with_the_number_of_the_time() -> None:
    clock, recorder, ticks = _loop(busy=False)
    clock.advance(5.0 + PERIOD / 2)
    ticks.wake()
    clock.advance(PERIOD)
    assert recorder.ran == [(5 * RATE + 1, 5.0 + PERIOD, (5 * RATE + 1) * PERIOD)]


def test_a_room_sleeps_again_once_nothing_is_pending() -> None:
    clock, recorder, ticks = _loop(busy=False)
    ticks.wake()
    clock.advance(PERIOD)
    clock.advance(5.0)
    assert len(recorder.ran) == 1
    assert clock.pending == 0


def test_a_wake_while_a_tick_is_scheduled_adds_no_second_timer() -> None:
    clock, _, ticks = _loop(busy=False)
    ticks.wake()
    ticks.wake()
    assert clock.pending == 1


def test_a_late_tick_runs_numbered_by_the_time_and_covers_the_periods_it_missed() -> None:
    clock, recorder, _ = _loop()
    clock.spend(2.5 * PERIOD)  # the loop was busy elsewhere: tick 1's timer fires late
    clock.advance(0.0)
    assert recorder.ran == [(2, 2.5 * PERIOD, 2 * PERIOD)]


def test_a_late_tick_has_its_lag_measured() -> None:
    clock = ManualClock(start=0.0)
    recorder = Recorder(clock)
    stats = TickStats()
    TickLoop(RATE, recorder.step, recorder.is_busy, stats, clock).start()
    clock.spend(2.5 * PERIOD)
    clock.advance(0.0)
    assert stats.ticks == 1
    assert stats.max_lag == 0.5 * PERIOD


def test_after_a_late_tick_the_schedule_keeps_its_boundaries() -> None:
    clock, recorder, _ = _loop()
    clock.spend(2.5 * PERIOD)
    clock.advance(2 * PERIOD)
    assert [at for _, at, _ in recorder.ran] == [2.5 * PERIOD, 3 * PERIOD, 4 * PERIOD]


def test_a_stopped_loop_runs_no_more_ticks() -> None:
    clock, recorder, ticks = _loop()
    clock.advance(PERIOD)
    asyncio.run(ticks.stop())
    clock.advance(1.0)
    assert len(recorder.ran) == 1


def test_inputs_wait_from_the_first_arrival_to_the_end_of_the_tick_that_applies_them() -> None:
    """One figure per tick, not per input: a clock read for the batch's first input only."""
    clock = ManualClock(start=0.0)
    recorder = Recorder(clock, busy=False, work=PERIOD / 8)
    stats = TickStats()
    ticks = TickLoop(RATE, recorder.step, recorder.is_busy, stats, clock)
    ticks.start()
    clock.advance(PERIOD / 4)
    ticks.input_arrived()  # the first input of the batch, 3/4 of a period before tick 1
    clock.advance(PERIOD / 4)
    ticks.input_arrived()
    clock.advance(PERIOD)
    buckets = stats.input_wait_buckets
    assert (buckets.count, buckets.sum) == (1, 0.75 * PERIOD + PERIOD / 8)


def test_a_tick_without_inputs_records_no_input_wait() -> None:
    clock = ManualClock(start=0.0)
    recorder = Recorder(clock, work=PERIOD / 8)
    stats = TickStats()
    TickLoop(RATE, recorder.step, recorder.is_busy, stats, clock).start()
    clock.advance(3 * PERIOD)
    assert stats.duration_buckets.count == 3
    assert stats.input_wait_buckets.count == 0


def test_a_failing_timer_of_an_instant_does_not_stop_the_others() -> None:
    clock = ManualClock(start=100.0)
    phase = Phase(clock, 0.5)
    ran: list[str] = []

    def fails() -> None:
        raise RuntimeError("boom")

    phase.call_at(100.5, fails)
    phase.call_at(100.5, lambda: ran.append("second"))
    clock.advance(1.0)
    assert ran == ["second"]
