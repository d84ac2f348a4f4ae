"""Installed from a wheel, tickrelay lives under one import name that a user's files never shadow.

The wheel is built from this checkout and installed into a fresh virtual environment (its
runtime dependencies come from this interpreter's site-packages; pip fetches only the build
backend, as any wheel build does). A
game developer's folder with its own ``server.py``, ``client.py`` and ``protocol/`` then
runs ``tickrelay serve`` and the README's client example.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCE = (".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv")
USER_FILES = {
    "server.py": "raise SystemExit('the user server.py was imported')\n",
    "client.py": "raise SystemExit('the user client.py was imported')\n",
    "protocol/__init__.py": "raise SystemExit('the user protocol/ was imported')\n",
}


@dataclass
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name

    def run(self, *args: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv holding tickrelay installed from a wheel built from this checkout."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"  # a copy: a build in the checkout would leave build/ behind
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(dist), str(source)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = dist.glob("tickrelay-*.whl")
    env = Venv(work / "venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env.root)],
        check=True,
        timeout=60,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env.python), "install", "-q",
         "--no-deps", str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return env


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A game developer's folder whose own modules are named like ours."""
    for name, text in USER_FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@contextmanager
def serving(venv: Venv, folder: Path, *flags: str) -> Iterator[int]:
    """``tickrelay serve`` from the venv, started in ``folder``; yields its port."""
    port = free_port()
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv.bin("tickrelay")), "serve", "--port", str(port), "--log-level", "warning",
             *flags],
            cwd=folder, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"tickrelay serve exited:\n{log.read_text()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"tickrelay serve did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def readme_client_example(port: int) -> str:
    """The first Python block of the README, pointed at ``port``."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None, "the README has no Python example"
    return block.group(1).replace("ws://127.0.0.1:8000", f"ws://127.0.0.1:{port}")


def test_the_wheel_installs_one_top_level_package(venv: Venv, tmp_path: Path) -> None:
    probe = "import tickrelay, tickrelay.server.app, tickrelay.client; print(tickrelay.__file__)"
    result = venv.run(venv.python, "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(venv.root) in result.stdout, "tickrelay was not imported from the venv's wheel"


@pytest.mark.parametrize("name", ["server", "client", "protocol", "loadtest", "examples"])
def test_the_wheel_does_not_install_generic_top_level_names(
    venv: Venv, tmp_path: Path, name: str
) -> None:
    result = venv.run(venv.python, "-c", f"import {name}", cwd=tmp_path)
    assert result.returncode != 0
    assert f"No module named '{name}'" in result.stderr


def test_readme_client_example_runs_next_to_user_modules_named_like_ours(
    venv: Venv, user_folder: Path
) -> None:
    with serving(venv, user_folder) as port:
        (user_folder / "bot.py").write_text(readme_client_example(port))
        result = venv.run(venv.python, "bot.py", cwd=user_folder)
    assert result.returncode == 0, result.stderr
    assert "{'x': 1, 'y': 2}" in result.stdout
    assert "rtt" in result.stdout


def test_serve_imports_logic_modules_from_the_working_directory(
    venv: Venv, user_folder: Path
) -> None:
    (user_folder / "mygame.py").write_text(
        "from tickrelay.server.logic import RelayLogic, register\n\n\n"
        "@register\nclass MyGame(RelayLogic):\n    name = 'mygame'\n"
    )
    with serving(venv, user_folder, "--logic-modules", "mygame") as port:
        answer = httpx.post(f"http://127.0.0.1:{port}/matchmake", json={"logic": "mygame"})
        assert answer.status_code == 200, answer.text
        room = httpx.get(f"http://127.0.0.1:{port}/rooms/{answer.json()['room']}")
    assert room.json()["logic"] == "mygame"


def test_loadtest_command_names_the_extra_when_it_is_missing(tmp_path: Path) -> None:
    from tickrelay.loadtest import entry

    assert entry.INSTALL_HINT == "pip install 'tickrelay[loadtest]'"
    script = (
        "import sys; sys.modules['rich'] = None\n"
        "from tickrelay.loadtest.entry import main\n"
        "raise SystemExit(main(['--help']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "pip install 'tickrelay[loadtest]'" in result.stderr


#: What the demo's three files must hold: the page, its game, the JS client module.
DEMO_FILES = {
    "/demo": "<canvas",
    "/demo/tag.js": "tickrelayDemo",
    "/demo/tickrelay.js": "export async function connect",
}


def test_the_wheel_ships_the_demo_page_and_the_js_client(venv: Venv, user_folder: Path) -> None:
    with serving(venv, user_folder) as port:
        answers = {path: httpx.get(f"http://127.0.0.1:{port}{path}") for path in DEMO_FILES}
    for path, marker in DEMO_FILES.items():
        assert answers[path].status_code == 200, (path, answers[path].text)
        assert marker in answers[path].text, path
