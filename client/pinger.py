"""``ping``/``pong``: round-trip time and the offset of the server's clock.

Kept apart from dispatch because a ping is a request awaiting its answer (a future per
``id``), while dispatch never awaits; the reader only hands pongs over to :meth:`on_pong`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tickrelay.protocol import now_ms

from .dispatch import Message

__all__ = ["Pinger"]

Pong = tuple[Message, float]


class Pinger:
    """Pending pings by ``id``, and the ``rtt``/``clock_offset_ms`` of the last answer."""

    def __init__(self) -> None:
        #: Round-trip time (s) of the last ping; None before the first.
        self.rtt: float | None = None
        #: Server clock minus local clock (ms) from the last ping; None before the first.
        self.clock_offset_ms: float | None = None
        self._pending: dict[int, asyncio.Future[Pong]] = {}
        self._last_id = 0

    async def ping(
        self, send: Callable[[Message], Awaitable[None]], timeout: float | None
    ) -> float:
        """Send a ``ping`` with ``send``, wait for its ``pong``, return the round-trip time.

        The clock offset is ``pong.st`` minus the local wall clock at the midpoint of the
        round trip (the usual NTP-style estimate: accurate to within rtt/2 whatever the
        asymmetry of the path).
        """
        self._last_id += 1
        ping_id = self._last_id
        fut: asyncio.Future[Pong] = asyncio.get_running_loop().create_future()
        self._pending[ping_id] = fut
        try:
            ct = now_ms()
            t0 = time.monotonic()
            await send({"t": "ping", "id": ping_id, "ct": ct})
            async with asyncio.timeout(timeout):
                pong, t1 = await fut
        finally:
            self._forget(ping_id, fut)
        self.rtt = max(0.0, t1 - t0)
        st = pong.get("st")
        if isinstance(st, int | float) and not isinstance(st, bool):
            self.clock_offset_ms = st - (ct + self.rtt * 1000.0 / 2.0)
        return self.rtt

    def on_pong(self, msg: Message) -> None:
        """Resolve the ping this ``pong`` answers (unknown ids are ignored)."""
        ping_id = msg.get("id")
        fut = self._pending.get(ping_id) if isinstance(ping_id, int) else None
        if fut is not None and not fut.done():
            fut.set_result((msg, time.monotonic()))

    def fail_pending(self, exc: Exception) -> None:
        """Fail every ping still waiting (the client is over for good)."""
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)

    def server_now_ms(self) -> float:
        """Estimated server wall clock (ms) using the offset from the last ping."""
        return now_ms() + (self.clock_offset_ms or 0.0)

    def _forget(self, ping_id: int, fut: asyncio.Future[Pong]) -> None:
        self._pending.pop(ping_id, None)
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled():
            fut.exception()  # mark retrieved: no "exception was never retrieved"
