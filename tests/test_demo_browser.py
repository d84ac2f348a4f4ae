"""``GET /demo`` in a real browser: headless Chromium (Debian's, driven by Playwright) plays
the tag demo. Two pages join one room; one moves with the keyboard, the other sees it move.
The pages are read through their debug hook, ``window.tickrelayDemo``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser_support import require_tool
from tests.conftest import ServerPool, ServerProcess

#: The players as the page's mirror holds them: the server's state, as that page received it.
POSITIONS = "() => window.tickrelayDemo.client.mirror.players"
READY = "() => window.tickrelayDemo !== undefined"


@pytest.fixture(scope="module")
def demo_server(servers: ServerPool) -> ServerProcess:
    """A plain server, started without the tag logic module: the demo brings its own."""
    return servers.get()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = require_tool("chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        try:
            yield browser
        finally:
            await browser.close()


async def open_demo(browser: Browser, server: ServerProcess, game: str) -> Page:
    """A page of its own (a separate browser context: another player) in ``game``."""
    context = await browser.new_context(viewport={"width": 900, "height": 640})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{server.http}/demo?game={game}")
    await page.wait_for_function(READY, timeout=10_000)
    failure = await page.evaluate("() => window.tickrelayDemo.error ?? null")
    assert failure is None and not errors, f"the demo failed: {failure} {errors}"
    return page


async def until(page: Page, predicate: str, arg: Any = None) -> None:
    await page.wait_for_function(predicate, arg=arg, timeout=10_000)


async def test_two_pages_play_one_room_and_each_sees_the_other_move(
    browser: Browser, demo_server: ServerProcess, room_id: str, tmp_path: Path
) -> None:
    watcher = await open_demo(browser, demo_server, room_id)
    mover = await open_demo(browser, demo_server, room_id)
    assert await watcher.evaluate("() => tickrelayDemo.room") == await mover.evaluate(
        "() => tickrelayDemo.room"
    )
    mover_pid = await mover.evaluate("() => tickrelayDemo.client.pid")
    await until(watcher, f"() => ({POSITIONS})()[{mover_pid!r}] !== undefined")
    start = (await watcher.evaluate(POSITIONS))[mover_pid]

    await mover.keyboard.down("ArrowLeft")  # the second player spawns at (90, 90)
    await until(watcher, f"(x) => ({POSITIONS})()[{mover_pid!r}].x < x - 10", start["x"])
    await mover.keyboard.up("ArrowLeft")

    own = (await mover.evaluate("() => tickrelayDemo.positions()"))[mover_pid]
    assert own["x"] < start["x"] - 10, "the mover draws itself where it went"
    moved = (await watcher.evaluate(POSITIONS))[mover_pid]
    assert moved["y"] == start["y"], "left moves along x only"
    drawn = await watcher.evaluate("() => tickrelayDemo.positions()")
    assert set(drawn) == {mover_pid, await watcher.evaluate("() => tickrelayDemo.client.pid")}
    await watcher.screenshot(path=tmp_path / "demo.png")
    assert (tmp_path / "demo.png").stat().st_size > 1000
