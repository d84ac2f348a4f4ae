"""The load tester end to end: real driver processes against real servers on loopback.

Runs the CLI as a user would (a subprocess), briefly and small, and checks the JSON report
holds sane figures and the plot is a PNG. The `floor` baseline needs nothing but this
package, so these tests work whatever state the tickrelay server is in; the tickrelay
variant runs when `tickrelay.server.cli` imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from tickrelay.loadtest.servers import REPO_ROOT, SERVERS, ServerProcess, free_port, reachable

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECRET = "loadtest-secret-that-is-long-enough-for-hs256"


def start(name: str, log_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    spec = SERVERS[name]
    if env:
        spec = replace(spec, env={**spec.env, **env})
    server = ServerProcess(spec, "127.0.0.1", free_port(), log_dir / f"{name}.log", pin=False)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start("floor", tmp_path_factory.mktemp("floor"))
    yield server
    server.stop()


def run_cli(url: str, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], bytes, str]:
    report, plot = tmp_path / "report.json", tmp_path / "plot.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickrelay.loadtest.cli",
            url,
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--ramp-up",
            "50",
            "--json",
            str(report),
            "--plot",
            str(plot),
            "--quiet",
            *args,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    png = plot.read_bytes() if plot.exists() else b""
    return proc.returncode, data, png, proc.stdout + proc.stderr


def assert_sane(report: dict[str, Any], planned: int) -> None:
    c, m, lat = report["connections"], report["messages"], report["latency_ms"]
    assert c["planned"] == planned and c["ok"] == planned and c["failed"] == 0
    assert c["connected_at_window_end"] == planned
    assert m["states"] > 0 and m["states_per_s"] > 0 and m["bytes_per_msg"] > 20
    assert m["inputs_per_s"] > 0
    assert lat["count"] > 0
    assert None not in (lat["p50"], lat["p90"], lat["p99"], lat["max"])
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 1000
    assert report["gaps_ms"]["count"] > 0
    assert report["driver"]["bottleneck"] is False and report["valid"] is True
    assert report["errors"] == {} and report["delta_base_mismatches"] == 0
    assert report["window"]["seconds"] == 2
    assert [p["t"] for p in report["timeseries"]] == list(range(report["window"]["end_s"]))


def test_players_against_floor(floor: ServerProcess, tmp_path: Path) -> None:
    rc, report, png, out = run_cli(
        f"ws://127.0.0.1:{floor.port}", tmp_path, "--rooms", "2", "--players", "3"
    )
    assert rc == 0, out
    assert_sane(report, planned=6)
    # floor ticks at 20 Hz and every player moves each tick: ~20 states per client-second
    assert 10 <= report["messages"]["states_per_client_per_s"] <= 30
    assert png.startswith(PNG_MAGIC)


def test_json_codec_spectators_slow_and_churn_against_floor(
    floor: ServerProcess, tmp_path: Path
) -> None:
    rc, report, png, out = run_cli(
        f"ws://127.0.0.1:{floor.port}",
        tmp_path,
        "--rooms",
        "1",
        "--players",
        "4",
        "--spectators",
        "1",
        "--codec",
        "json",
        "--churn",
        "5",
        "--slow-fraction",
        "0.25",
        "--slow-mode",
        "rate",
        "--slow-rate",
        "1000",
    )
    assert rc == 0, out
    c = report["connections"]
    assert c["planned"] == c["ok"] == 5
    assert c["resumes_ok"] + c["resumes_failed"] > 0  # floor cannot resume: a fresh seat
    assert report["latency_ms"]["count"] > 0
    assert report["config"]["codec"] == "json"
    assert png.startswith(PNG_MAGIC)


def test_server_process_leaves_nothing_behind(tmp_path: Path) -> None:
    server = start("floor", tmp_path)
    pid = server.proc.pid if server.proc else -1
    assert reachable("127.0.0.1", server.port)
    assert server.cpu_seconds() >= 0 and server.rss_bytes() > 1_000_000
    server.stop()
    server.stop()  # idempotent
    assert not reachable("127.0.0.1", server.port)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_two_process_baseline_serves_rooms_from_both_copies(tmp_path: Path) -> None:
    server = start("tickrelay-2proc", tmp_path)
    try:
        (copy,) = server.copies
        assert server.url == f"ws://127.0.0.1:{server.port},ws://127.0.0.1:{copy.port}"
        rc, report, _, out = run_cli(server.url, tmp_path, "--rooms", "2", "--players", "2")
        assert rc == 0, out
        assert_sane(report, planned=4)
        for port in (server.port, copy.port):  # one room each, nothing shared
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/rooms", timeout=5) as reply:
                assert len(json.load(reply)) == 1
    finally:
        server.stop()
    assert server.exited
    assert not reachable("127.0.0.1", copy.port)


def test_players_against_tickrelay_with_auth(tmp_path: Path) -> None:
    reason = SERVERS["tickrelay"].available()
    if reason is not None:
        pytest.skip(reason)
    server = start("tickrelay", tmp_path, env={"TICKRELAY_AUTH_SECRET": SECRET})
    try:
        rc, report, png, out = run_cli(
            f"ws://127.0.0.1:{server.port}",
            tmp_path,
            "--rooms",
            "2",
            "--players",
            "2",
            "--secret",
            SECRET,
            "--token-rooms",
            "--churn",
            "1",
        )
    finally:
        server.stop()
    assert rc == 0, out
    assert_sane(report, planned=4)
    c = report["connections"]
    assert c["resumes_failed"] == 0  # tickrelay resumes the seat
    assert png.startswith(PNG_MAGIC)


def test_bench_runs_end_to_end_and_regenerates_its_doc(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "PERFORMANCE.md"
    command = [
        sys.executable,
        "-m",
        "tickrelay.loadtest.cli",
        "bench",
        "--servers",
        "floor,tickrelay",
        "--loads",
        "1,2",
        "--players",
        "2",
        "--measure",
        "1",
        "--warmup",
        "0.5",
        "--scenarios",
        "none",
        "--no-pin",
        "--workers",
        "1",
        "--out-dir",
        str(tmp_path / "out"),
        "--doc",
        str(doc),
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (report_path,) = (tmp_path / "out").glob("bench-*.json")
    report = json.loads(report_path.read_text())
    steps = [(row["server"], row["rooms"]) for row in report["sweep"]]
    assert steps == [("floor", 1), ("floor", 2), ("tickrelay", 1), ("tickrelay", 2)]
    assert all(row["msgs_per_s"] > 0 for row in report["sweep"])
    # CPU time is read in 10 ms steps: over a 1 s window at 1-2% of a core it may read 0.
    assert all(row["cpu_us_per_msg"] >= 0 for row in report["sweep"])
    # Servers take turns at each load: their log files were written in that order.
    logs = sorted(
        (tmp_path / "out" / "logs").glob("*-load-*.log"), key=lambda p: p.stat().st_mtime_ns
    )
    assert [p.name for p in logs][:2] == ["floor-load-1.log", "tickrelay-load-1.log"]
    text = doc.read_text()
    assert "| tickrelay | 2 | 4 |" in text and "relative to floor" in text
    assert (doc.parent / "perf" / "bench.png").read_bytes().startswith(PNG_MAGIC)
