"""The outside programs the browser-side tests drive: Node (the JS client's own tests) and
Chromium (the demo page). Like redis-server, they are never skipped for: a missing one
fails the test with what to install (``.ci/run`` installs both when missing).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JS_CLIENT = REPO / "client" / "js"
HOW_TO_INSTALL = {
    "node": "Node.js 20 or later (apt-get install nodejs)",
    "chromium": "Debian's Chromium (apt-get update && apt-get install -y chromium)",
}


def require_tool(name: str) -> str:
    """The path of ``name`` on PATH; fails the test (never skips) when it is missing."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH: install {HOW_TO_INSTALL[name]}", pytrace=False)
    return found


def node_major(node: str) -> int:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    return int(version.stdout.strip().lstrip("v").split(".")[0])
