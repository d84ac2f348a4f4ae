"""GET /metrics read as Prometheus reads it, from two workers that share a room.

Each worker process exposes its own figures; Prometheus scrapes each one and sums. So the
figures must be per process and add up: the histograms of two workers summed bucket by
bucket are still a histogram whose +Inf bucket is the summed count, and the counts follow
what the test did (the room ticks on its owner only; the joins are where players joined).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import ServerPool, ServerProcess
from tests.helpers import refusal, state_until
from tests.redis_support import RedisServer
from tests.test_cluster_rooms import wait_ready
from tickrelay.client import connect

HISTOGRAMS = (
    "tickrelay_tick_lag_seconds",
    "tickrelay_tick_duration_seconds",
    "tickrelay_input_ack_seconds",
    "tickrelay_state_message_bytes",
)
DASHBOARD = (
    Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "tickrelay-dashboard.json"
)
INPUTS = 10


@pytest.fixture(scope="module")
def redis_url(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), redis_binary)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture(scope="module")
def workers(servers: ServerPool, redis_url: str) -> tuple[ServerProcess, ServerProcess]:
    """Two workers of this module's own. Every room is made on the first, so the second
    never ticks; tests compare scrapes taken before and after what they do."""
    pair = (servers.fresh(redis_url=redis_url), servers.fresh(redis_url=redis_url))
    for worker in pair:
        wait_ready(worker)
    return pair


def scrape(worker: ServerProcess) -> list[Sample]:
    response = httpx.get(f"{worker.http}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = text_string_to_metric_families(response.text)
    return [sample for family in families for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, f"{name} {labels}: {len(found)} samples"
    return found[0]


def grown(before: list[Sample], after: list[Sample], name: str, **labels: str) -> float:
    """How much a counter grew between two scrapes (a labelled one may have no sample yet)."""
    old = [s.value for s in before if s.name == name and labels.items() <= s.labels.items()]
    return value(after, name, **labels) - (old[0] if old else 0.0)


def buckets(samples: list[Sample], name: str) -> dict[str, float]:
    return {s.labels["le"]: s.value for s in samples if s.name == f"{name}_bucket"}


async def play_across(a: ServerProcess, b: ServerProcess, room_id: str) -> None:
    """A room made on ``a``; one player on each worker; the remote one sends the inputs."""
    answer = httpx.post(
        f"{a.http}/rooms", json={"id": room_id}, headers=a.admin_headers(), timeout=5
    )
    assert answer.status_code == 201
    async with await connect(a.ws, room_id) as alice, await connect(b.ws, room_id) as bob:
        for n in range(INPUTS):
            seq = await bob.send_input({"n": n})
            await state_until(bob, lambda mirror, seq=seq: mirror.acks.get(bob.pid) == seq)
        await state_until(alice, lambda mirror: mirror.players.get(bob.pid) == {"n": INPUTS - 1})


async def test_histograms_of_two_workers_add_up(workers, room_id):
    a, b = workers
    before = scrape(a)
    await play_across(a, b, room_id)
    scrapes = [scrape(a), scrape(b)]
    for name in HISTOGRAMS:
        per_worker = [buckets(samples, name) for samples in scrapes]
        bounds = list(per_worker[0])
        assert bounds[-1] == "+Inf"
        assert all(list(worker) == bounds for worker in per_worker)  # same buckets everywhere
        summed = [sum(worker[le] for worker in per_worker) for le in bounds]
        assert summed == sorted(summed), f"{name}: summed buckets are not cumulative"
        counts = sum(value(samples, f"{name}_count") for samples in scrapes)
        assert summed[-1] == counts
    owner, remote = scrapes
    assert value(owner, "tickrelay_tick_lag_seconds_count") == value(owner, "tickrelay_ticks_total")
    assert grown(before, owner, "tickrelay_ticks_total") >= INPUTS
    assert 1 <= grown(before, owner, "tickrelay_input_ack_seconds_count") <= INPUTS
    assert value(remote, "tickrelay_ticks_total") == 0  # rooms tick on their owner only


async def test_each_worker_counts_the_joins_and_refusals_it_served(workers, room_id):
    a, b = workers
    before = [scrape(a), scrape(b)]
    await play_across(a, b, room_id)
    await refusal(b.ws, "not/an/id")
    after = [scrape(a), scrape(b)]
    for old, new in zip(before, after, strict=True):
        assert grown(old, new, "tickrelay_joins_total") == 1
    assert grown(before[1], after[1], "tickrelay_refusals_total", code="4000") == 1
    assert not [s for s in after[0] if s.name == "tickrelay_refusals_total"]


async def test_a_resume_and_the_drop_before_it_are_counted(workers, room_id):
    a, b = workers
    before = scrape(b)
    async with await connect(a.ws, room_id) as alice:
        bob = await connect(b.ws, room_id)
        token = bob.resume_token
        await bob.close()
        await alice.wait_for("away")
        async with await connect(b.ws, room_id, resume=token):
            pass
    after = scrape(b)
    assert grown(before, after, "tickrelay_resumes_total") == 1
    assert grown(before, after, "tickrelay_joins_total") == 2
    assert grown(before, after, "tickrelay_drops_total") == 2


async def test_forwarded_batches_show_on_both_workers_and_takeovers_read_zero(workers, room_id):
    a, b = workers
    before = [scrape(a), scrape(b)]
    await play_across(a, b, room_id)
    for old, worker in zip(before, workers, strict=True):
        figures = scrape(worker)
        assert grown(old, figures, "tickrelay_cluster_batches_sent_total") >= 1
        assert value(figures, "tickrelay_cluster_takeovers_total") == 0
        assert value(figures, "tickrelay_cluster_healthy") == 1
        info = next(s for s in figures if s.name == "tickrelay_worker_info")
        assert info.labels["pid"] == str(worker.process.pid)


async def test_forwarded_messages_are_counted_one_by_one_on_both_sides(workers, room_id):
    a, b = workers
    before = [scrape(a), scrape(b)]
    await play_across(a, b, room_id)  # b forwards its player's join and inputs to a
    after = [scrape(a), scrape(b)]
    assert grown(before[1], after[1], "tickrelay_cluster_items_sent_total") >= INPUTS + 1
    assert grown(before[0], after[0], "tickrelay_cluster_items_received_total") >= INPUTS + 1
    for old, new in zip(before, after, strict=True):
        items = grown(old, new, "tickrelay_cluster_items_sent_total")
        assert items >= grown(old, new, "tickrelay_cluster_batches_sent_total")


async def test_states_sent_to_clients_are_counted_by_the_worker_that_wrote_them(workers, room_id):
    a, b = workers
    before = [scrape(a), scrape(b)]
    await play_across(a, b, room_id)
    for old, worker in zip(before, workers, strict=True):
        figures = scrape(worker)
        states = grown(old, figures, "tickrelay_states_sent_total")
        assert states >= INPUTS
        assert grown(old, figures, "tickrelay_messages_sent_total") > states  # + welcome


def declared_names(worker: ServerProcess) -> set[str]:
    """Every sample name /metrics has or declares (a counter by code has no sample before
    its first refusal, but its family is there, typed)."""
    text = httpx.get(f"{worker.http}/metrics", timeout=5).text
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs
    return {name for expr in exprs for name in re.findall(r"\btickrelay_[a-z_]+", expr)}


async def test_the_grafana_dashboard_queries_only_metrics_that_are_exposed(workers, room_id):
    a, b = workers
    await play_across(a, b, room_id)
    exposed = declared_names(a)
    missing = dashboard_metric_names() - exposed
    assert not missing, f"the dashboard queries metrics /metrics does not have: {missing}"
