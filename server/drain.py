"""A uvicorn server that drains where a proxy can see it before it stops.

uvicorn closes its listener as soon as SIGTERM arrives, so a readiness probe can never see
the server go unready, and a player that joins while the server stops reaches nothing
rather than the contract's ``1013`` ("try another"). Here the first SIGTERM/SIGINT only
marks the server as draining (``/readyz`` answers 503 and new joins are closed ``1013``),
the listener stays open for ``drain_seconds``, and only then does uvicorn's own shutdown
run (members get ``1012``). A second signal ends the wait at once.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

log = logging.getLogger("tickrelay.drain")


class Phase(enum.Enum):
    SERVING = "serving"
    DRAINING = "draining"
    STOPPING = "stopping"


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` with a visible drain between the first signal and the shutdown."""

    def __init__(
        self, config: uvicorn.Config, drain_seconds: float, start_draining: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._start_draining = start_draining
        self.phase = Phase.SERVING
        self._drain_ends = 0.0
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Runs in the signal handler: sets state only (no logging, no awaiting)."""
        if self.phase is Phase.SERVING and self.drain_seconds > 0:
            self._captured_signals.append(sig)  # re-raised after the shutdown, as uvicorn does
            self.phase = Phase.DRAINING
            self._drain_ends = time.monotonic() + self.drain_seconds
            self._start_draining()
            return
        self.phase = Phase.STOPPING
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.phase is Phase.DRAINING:
            if not self._announced:
                self._announced = True
                log.warning(
                    "draining for %.1f s: /readyz answers 503 and new joins are refused "
                    "(send the signal again to stop now)",
                    self.drain_seconds,
                )
            if time.monotonic() >= self._drain_ends:
                self.phase = Phase.STOPPING
                self.should_exit = True
        return await super().on_tick(counter)
