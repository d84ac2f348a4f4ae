"""Task ownership helpers: a retry loop still ends when its task is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from tickrelay.server.tasks import raise_if_cancelling


async def _command() -> None:
    """Like redis-py cancelled mid-command: the cancellation comes out as an error."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        raise ConnectionError("disconnected") from None


async def _retrying() -> None:
    while True:
        try:
            await _command()
        except ConnectionError:
            raise_if_cancelling()
            await asyncio.sleep(0.01)


async def _ends_when_cancelled(loop: Coroutine[Any, Any, None]) -> None:
    """Cancel the loop mid-command: it ends cancelled (a loop that went on times out)."""
    task = asyncio.get_running_loop().create_task(loop)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(1.0):
            await task


async def test_a_retry_loop_ends_when_its_task_is_cancelled_mid_command() -> None:
    await _ends_when_cancelled(_retrying())


async def _retried_inside() -> None:
    """Like redis-py's retry policy: the converted cancellation is retried, and succeeds."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0)


async def _polling() -> None:
    while True:
        raise_if_cancelling()
        await _retried_inside()
        await asyncio.sleep(0.01)


async def test_a_loop_ends_when_a_command_swallowed_its_cancellation() -> None:
    await _ends_when_cancelled(_polling())


async def test_an_error_without_a_cancellation_is_retried() -> None:
    failures = 0

    async def failing_twice() -> str:
        nonlocal failures
        while True:
            try:
                if failures < 2:
                    raise ConnectionError("refused")
                return "done"
            except ConnectionError:
                raise_if_cancelling()
                failures += 1

    assert await failing_twice() == "done"
    assert failures == 2
