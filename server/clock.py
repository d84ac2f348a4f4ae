"""Time for the room core, injected: the core never reads a clock or a loop of its own.

Rooms, their resume grace and idle timers, and the tick schedule take a ``Clock``, so they
run the same under the event loop and under a test's manual clock (messages in, messages
out, time advanced by hand). Callers bind ``now`` and ``call_later`` once: no layer is
added per tick or per message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    """A pending callback; ``asyncio.TimerHandle`` is one."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds and one-shot timers."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> Timer: ...

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Timer: ...


class LoopClock:
    """The production clock: ``time.monotonic`` (the loop's own time) and the running loop."""

    __slots__ = ()

    now = staticmethod(time.monotonic)

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_at(when, callback, *args)


class Countdown:
    """One re-armable timer (a room's idle disposal): armed at most once at a time."""

    __slots__ = ("_callback", "_clock", "_delay", "_timer")

    def __init__(self, clock: Clock, delay: float, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._delay = delay
        self._callback = callback
        self._timer: Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = self._clock.call_later(self._delay, self._fire)

    def disarm(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _fire(self) -> None:
        self._timer = None
        self._callback()
