"""Auto-reconnect: get a dropped session's seat back.

Retries after the close codes of ``tickrelay.protocol.RECONNECTABLE`` with jittered
exponential backoff (:func:`~tickrelay.client.urls.backoff_delays`), resuming with the last
resume token, and joins afresh when the token is refused (``4012``). The initial join is
never retried: its refusal is the caller's answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from tickrelay.protocol import RECONNECTABLE, CloseCode

from .errors import ConnectRefused
from .handshake import Joined
from .options import ClientOptions
from .session import Session, SessionState
from .urls import backoff_delays

__all__ = ["Reconnector"]

log = logging.getLogger("tickrelay.client")

#: HTTP statuses worth retrying during a reconnect: a load balancer or proxy in front of a
#: restarting deployment answers these for a moment.
_RETRYABLE_STATUS = frozenset({502, 503, 504})

JoinFn = Callable[[str | None], Awaitable[Joined]]


def _retryable(refused: ConnectRefused) -> bool:
    return refused.code in RECONNECTABLE or refused.status in _RETRYABLE_STATUS


def _refusal_reason(refused: ConnectRefused) -> str:
    return refused.reason if refused.status is None else f"HTTP {refused.status}"


class Reconnector:
    """The reconnect policy of one client, and its counters."""

    def __init__(self, options: ClientOptions) -> None:
        self._options = options
        self._rng = options.rng if options.rng is not None else random.Random()
        #: Successful reconnects.
        self.reconnects = 0
        #: ``4012`` answers to a resume that forced a fresh join.
        self.resume_failures = 0

    def wanted(self, session: Session[Any]) -> bool:
        """Whether the connection that just ended should be followed by a reconnect."""
        return (
            self._options.auto_reconnect
            and session.state is SessionState.OPEN
            and session.close_code in RECONNECTABLE
        )

    async def rejoin(
        self, resume: str | None, join: JoinFn, session: Session[Any]
    ) -> Joined | None:
        """Try to join again (``join(resume)``) until it works; None when giving up.

        Stops as soon as the session leaves ``RECONNECTING`` (``close()``/``leave()``).
        Every failed attempt is recorded as the session's last close code and reason.
        """
        delays = self._delays()
        delay = next(delays, None)
        while delay is not None:
            await asyncio.sleep(delay)
            if session.state is not SessionState.RECONNECTING:
                return None
            try:
                joined = await join(resume)
            except ConnectRefused as exc:
                session.record_end(exc.code, _refusal_reason(exc))
                if exc.code == CloseCode.RESUME_FAILED and resume is not None:
                    # The grace is over or the token died: join afresh now (new pid),
                    # without spending an attempt, since this is a different request.
                    log.warning("resume refused (%s), joining afresh", exc.reason)
                    self.resume_failures += 1
                    resume, delay = None, 0.0
                    continue
                if not _retryable(exc):
                    log.warning("reconnect refused, giving up: %s", exc)
                    return None
                log.info("reconnect refused, retrying: %s", exc)
            except (OSError, TimeoutError) as exc:
                session.record_end(1006, f"reconnect failed: {exc!r}")
                log.info("reconnect failed, retrying: %r", exc)
            else:
                self.reconnects += 1
                return joined
            delay = next(delays, None)
        log.warning("giving up reconnecting after %d attempts", self._options.reconnect_attempts)
        return None

    def _delays(self) -> Iterator[float]:
        base, maximum = self._options.reconnect_backoff
        return backoff_delays(base, maximum, self._options.reconnect_attempts, self._rng)
