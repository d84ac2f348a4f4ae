"""The JavaScript client (client/js/tickrelay.js) passes its own tests, run by Node's
built-in test runner against a real server: the same module the demo page imports."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.browser_support import JS_CLIENT, node_major, require_tool
from tests.conftest import ADMIN, ServerPool

#: Node 20 has its global WebSocket behind a flag (21 and later have it by default).
WEBSOCKET_FLAG = "--experimental-websocket"


@pytest.fixture(scope="module")
def node() -> str:
    node = require_tool("node")
    if node_major(node) < 20:
        pytest.fail("the JS client's tests need Node.js 20 or later", pytrace=False)
    return node


def test_the_js_client_passes_its_node_tests_against_a_real_server(
    node: str, servers: ServerPool
) -> None:
    server = servers.get()
    env = {**os.environ, "TICKRELAY_URL": server.http, "TICKRELAY_ADMIN": ADMIN}
    if node_major(node) == 20:
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} {WEBSOCKET_FLAG}".strip()
    files = sorted(str(path) for path in (JS_CLIENT / "test").glob("*.test.mjs"))
    assert files, "no JS test files found"
    result = subprocess.run(
        [node, "--test", *files], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"node --test failed:\n{result.stdout}\n{result.stderr}"
    assert "# fail 0" in result.stdout, result.stdout
