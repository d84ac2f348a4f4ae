"""``tickrelay serve --workers N``: one port, N worker processes, kept alive by a supervisor.

Real processes on a real port: the supervisor is started as an operator would, with flags,
and the tests tell its workers apart by the pid ``/healthz`` reports (each request on a
fresh connection, so the kernel picks a worker anew).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ADMIN, BAD_LOG_SIGNS, _env_for, free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


@dataclass
class Cluster:
    """A supervisor and what it serves."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def healthz(cluster: Cluster) -> dict[str, object]:
    """One answer on a connection of its own."""
    response = httpx.get(f"{cluster.http}/healthz", timeout=2)
    response.raise_for_status()
    return response.json()


def answering_pids(cluster: Cluster, wanted: int, tries: int = 200) -> set[int]:
    """Pids answering /healthz, asked on fresh connections until ``wanted`` are seen."""
    pids: set[int] = set()
    for _ in range(tries):
        pids.add(healthz(cluster)["pid"])
        if len(pids) >= wanted:
            break
    return pids


def start_cluster(redis_url: str, log_dir: Path, *flags: str) -> Cluster:
    port = free_port()
    env = _env_for({"admin_token": ADMIN, "log_level": "warning", "drain_seconds": 0})
    argv = [sys.executable, "-m", "tickrelay.server.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "2", "--redis-url", redis_url, *flags]  # fmt: skip
    log_path = log_dir / f"supervisor-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    cluster = Cluster(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while len(cluster.workers()) < 2 or not serves(cluster):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the supervisor did not start:\n{cluster.log()}")
        time.sleep(0.1)
    return cluster


def serves(cluster: Cluster) -> bool:
    try:
        return len(answering_pids(cluster, 2, tries=20)) == 2
    except httpx.HTTPError:
        return False


def stop_cluster(cluster: Cluster) -> None:
    if cluster.process.poll() is None:
        cluster.process.send_signal(signal.SIGTERM)
        try:
            cluster.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            for worker in cluster.workers():
                worker.kill()
            cluster.process.kill()
            cluster.process.wait()


@pytest.fixture
def cluster(redis_server, tmp_path: Path) -> Iterator[Cluster]:
    cluster = start_cluster(redis_server.url, tmp_path, "--tick-rate", "30")
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
    found = [sign for sign in BAD_LOG_SIGNS if sign in cluster.log()]
    assert not found, cluster.log()[-4000:]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(predicate, timeout: float = STOP_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_two_workers_answer_on_one_port_from_two_processes(cluster):
    pids = answering_pids(cluster, 2)
    assert pids == {worker.pid for worker in cluster.workers()}
    assert cluster.process.pid not in pids


def test_each_worker_reports_its_own_index(cluster):
    answers = {}
    while len(answers) < 2:
        answer = healthz(cluster)
        answers[answer["pid"]] = answer["worker"]
    assert sorted(answers.values()) == [0, 1]


def test_a_killed_worker_is_restarted_while_the_other_keeps_serving(cluster):
    victim, survivor = cluster.workers()
    victim.kill()
    victim.wait(timeout=5)
    seen: set[int] = set()
    restarted = lambda: bool(seen - {survivor.pid})  # noqa: E731
    # Every request meanwhile is answered (healthz raises otherwise), by the survivor
    # until the replacement serves.
    assert wait_until(lambda: seen.add(healthz(cluster)["pid"]) or restarted())
    [replacement] = seen - {survivor.pid}
    assert replacement != victim.pid
    assert {w.pid for w in cluster.workers()} == {survivor.pid, replacement}
    assert "was killed by SIGKILL" in cluster.log()


def test_sigterm_stops_every_worker_and_frees_the_port(cluster):
    workers = cluster.workers()
    cluster.process.send_signal(signal.SIGTERM)
    assert cluster.process.wait(timeout=STOP_TIMEOUT) == 0
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert port_is_free(cluster.port)


def test_a_worker_that_does_not_stop_is_killed_after_the_stop_timeout(cluster):
    stuck = cluster.workers()[0]
    stuck.suspend()  # SIGSTOP: the SIGTERM it is sent stays pending
    cluster.process.send_signal(signal.SIGTERM)
    # drain_seconds 0 + uvicorn's 5 s shutdown + the 5 s margin, and some slack.
    assert cluster.process.wait(timeout=STOP_TIMEOUT + 10) == 0
    assert not stuck.is_running()
    assert "did not stop within" in cluster.log()


def test_a_killed_supervisor_leaves_no_worker_behind(cluster):
    workers = cluster.workers()
    cluster.process.kill()
    cluster.process.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=STOP_TIMEOUT)
    for orphan in alive:  # the test fails, and leaves nothing behind for the next one
        orphan.kill()
    assert not alive
    assert wait_until(lambda: port_is_free(cluster.port))


def test_settings_given_as_flags_reach_every_worker(cluster):
    tick_rates = {}
    while len(tick_rates) < 2:
        # One connection for both requests, so the room is made and read on one worker.
        with httpx.Client(base_url=cluster.http, timeout=2) as http:
            pid = http.get("/healthz").json()["pid"]
            room = http.post("/rooms", json={}, headers={"Authorization": f"Bearer {ADMIN}"}).json()
            tick_rates[pid] = http.get(f"/rooms/{room['id']}").json()["tick_rate"]
    assert list(tick_rates.values()) == [30, 30]


def test_sighup_replaces_every_worker_while_the_port_keeps_answering(cluster):
    before = {worker.pid for worker in cluster.workers()}
    cluster.process.send_signal(signal.SIGHUP)
    # Every request meanwhile is answered (healthz raises otherwise).
    assert wait_until(lambda: bool(healthz(cluster)) and not before & current_pids(cluster), 30)
    assert len(current_pids(cluster)) == 2
    assert answering_pids(cluster, 2) == current_pids(cluster)


def current_pids(cluster: Cluster) -> set[int]:
    return {worker.pid for worker in cluster.workers()}


def test_a_worker_that_cannot_start_stops_the_supervisor(redis_server, tmp_path):
    argv = [sys.executable, "-m", "tickrelay.server.cli", "serve", "--port", str(free_port()),
            "--workers", "2", "--redis-url", redis_server.url,
            "--logic-modules", "no_such_module_for_tickrelay"]  # fmt: skip
    result = subprocess.run(argv, env=_env_for({}), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no_such_module_for_tickrelay" in result.stderr
    assert "restarting" not in result.stderr


def test_one_worker_serves_in_the_process_started(server):
    answer = httpx.get(f"{server.http}/healthz").json()
    assert answer["pid"] == server.process.pid
    assert answer["worker"] is None


async def test_players_reaching_both_workers_play_in_one_room(cluster):
    """Through the one port, the kernel spreads a room's players over both processes; the
    owner holds some of them as members on the other worker, and all see one state."""
    from tests.helpers import state_until
    from tickrelay.client import connect

    ws = f"ws://127.0.0.1:{cluster.port}"
    players = [await connect(ws, "shared") for _ in range(8)]
    try:
        for n, player in enumerate(players):
            await player.send_input({"n": n})
        pids = {player.pid: n for n, player in enumerate(players)}
        for player in players:
            await state_until(
                player,
                lambda mirror: {pid: s.get("n") for pid, s in mirror.players.items()} == pids,
            )
        members = owners_view(cluster, "shared")
        remote = [member for member in members if member.get("remote")]
        assert len(members) == 8
        assert 0 < len(remote) < 8, members  # some on each process
    finally:
        for player in players:
            await player.close()


def owners_view(cluster: Cluster, room_id: str) -> list[dict[str, object]]:
    """``GET /rooms/{id}/connections`` as the owner answers it (other workers say 404)."""
    for _ in range(200):
        answer = httpx.get(
            f"{cluster.http}/rooms/{room_id}/connections",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=2,
        )
        if answer.status_code == 200:
            return answer.json()
    raise AssertionError("no worker answered as the room's owner")


async def test_a_rolling_restart_loses_no_room(cluster):
    """SIGHUP replaces both workers one at a time; each hands its rooms over as it goes,
    and the players (reconnecting through the one port) keep their pids and states."""
    from tests.helpers import state_until
    from tickrelay.client import connect

    ws = f"ws://127.0.0.1:{cluster.port}"
    players = [await connect(ws, "rolled", auto_reconnect=True) for _ in range(4)]
    try:
        pids = [player.pid for player in players]
        for n, player in enumerate(players):
            await player.send_input({"n": n})
        for player in players:
            await state_until(player, lambda mirror: len(mirror.players) == 4)
        before = current_pids(cluster)
        cluster.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: not before & current_pids(cluster), 30)
        assert wait_until(lambda: len(current_pids(cluster)) == 2, 30)
        expected = {pid: {"n": n} for n, pid in enumerate(pids)}
        for player in players:
            await state_until(player, lambda mirror: mirror.players == expected, timeout=15)
        assert [player.pid for player in players] == pids
    finally:
        for player in players:
            await player.close()
