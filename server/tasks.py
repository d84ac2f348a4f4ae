"""The owner of tasks that outlive the coroutine that started them.

A connection whose ASGI coroutine has returned (see ``TransportHandle.detach``) still needs
a writer task now and then. Whoever cancels such a task does not await it; this owner does,
when it is closed with the app, so no task is ever orphaned or left with an exception
nobody retrieved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("tickrelay.tasks")


class Tasks:
    """A set of running tasks: failures are logged, ``close`` cancels and awaits the rest."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` if someone is cancelling the current task.

    A loop that talks to Redis calls it once per round and in its error handler: redis-py
    can swallow a cancellation that meets a command in flight (the cancelled read comes
    out as a connection or timeout error, which its retry policy retries, and the command
    then succeeds). A loop that went on after that would never end: a worker hung in its
    shutdown once its supervisor had died, until the test's timeout killed it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
