"""The ``tickrelay`` CLI as a subprocess: refused settings at start, dev tokens."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jwt

from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tickrelay.server.cli`` with no ``TICKRELAY_*`` variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKRELAY_")}
    # --port 0 in the serve tests: should a refused setting start a server after all, it
    # must not take a fixed port; the timeout then ends it and the test fails.
    return subprocess.run(
        [sys.executable, "-m", "tickrelay.server.cli", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_serve_with_several_workers_and_no_redis_exits_with_one_line_naming_it():
    result = run_cli("serve", "--port", "0", "--workers", "2")
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "workers" in lines[0]
    assert "redis" in lines[0]


def test_serve_with_an_out_of_range_tick_rate_exits_with_one_line_naming_it():
    result = run_cli("serve", "--port", "0", "--tick-rate", "500")
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "tick_rate" in lines[0]


def refusal_line(*flags: str) -> str:
    """The one line ``serve`` prints when it refuses to start with ``flags``."""
    result = run_cli("serve", "--port", "0", *flags)
    assert result.returncode != 0
    [line] = error_lines(result)
    return line


def test_serve_with_a_byte_burst_below_the_largest_message_exits_with_one_line_naming_it():
    assert "message_bytes_burst" in refusal_line("--message-bytes-burst", "1024")


def test_serve_with_a_trusted_proxy_that_is_not_an_address_exits_with_one_line_naming_it():
    line = refusal_line("--forwarded-allow-ips", "127.0.0.1,proxy.local")
    assert "forwarded_allow_ips" in line


def test_serve_refuses_a_bad_setting_from_the_environment_too():
    result = run_cli("serve", "--port", "0", TICKRELAY_TICK_RATE="0")
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "tick_rate" in lines[0]


def test_token_prints_a_jwt_with_sub_rooms_and_exp():
    before = time.time()
    result = run_cli("token", "--sub", "bob", "--secret", "S", "--room", "r1", "--ttl", "60")
    after = time.time()
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert "\n" not in token
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)  # a 1-byte dev secret
        claims = jwt.decode(token, "S", algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert claims["rooms"] == ["r1"]
    assert before + 60 - 1 <= claims["exp"] <= after + 60 + 1


def test_token_takes_its_secret_from_the_environment():
    result = run_cli("token", "--sub", "bob", TICKRELAY_AUTH_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "bob"


def test_token_without_a_secret_fails_with_a_clear_message():
    result = run_cli("token", "--sub", "bob")
    assert result.returncode != 0
    assert result.stdout == ""
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "secret" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_freezes_the_startup_objects_out_of_full_collections() -> None:
    from tickrelay.server.cli import freeze_startup_objects

    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > before + 1000  # modules, classes, the app's imports
    finally:
        gc.unfreeze()


def test_serve_with_several_workers_on_port_0_exits_with_one_line_naming_it():
    line = refusal_line("--workers", "2", "--redis-url", "redis://127.0.0.1:1/0")
    assert "workers" in line
    assert "port" in line
