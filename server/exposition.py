"""``GET /metrics``: this process's figures as Prometheus families, built at scrape time.

A custom collector reads what the server already counts as plain numbers (``Metrics``,
each outbox's counters, the cluster node's ``stats()``) only when Prometheus asks, so the
per-message and per-tick paths never touch a Prometheus object. ``prometheus_client`` does
what hand-written text did badly: the histogram families (cumulative buckets, ``+Inf``,
``_sum`` and ``_count``), escaping and the text format itself.

Each process has its own figures and says which process it is (``tickrelay_worker_info``):
with several workers, every one is scraped on its own and Prometheus sums across them (see
the README's "Metrics" section).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from tickrelay.server.metrics import Buckets
from tickrelay.server.services import Services
from tickrelay.server.worker import worker_index

# Counters of a cluster worker, from its node's ``stats()``, each named
# tickrelay_cluster_<key>_total. A key the node does not report yet (``takeovers`` comes
# with room takeover) reads as 0.
CLUSTER_COUNTERS = {
    "batches_sent": "Batches of forwarded messages sent to other workers.",
    "items_sent": "Messages sent to other workers (states, inputs, joins, ...), in batches.",
    "items_received": "Messages received from other workers, in batches.",
    "batches_lost_sending": "Batches that could not be published.",
    "batches_lost_receiving": "Gaps seen in other workers' batch sequences.",
    "resyncs": "Remote rooms that asked their owner for a full state again.",
    "bad_items": "Undecodable batches or items from other workers.",
    "takeovers": "Rooms this worker took over from a dead owner.",
    "directory_writes_refused": (
        "Room directory writes fenced off: the room was no longer ours under that epoch "
        "(moved, handed over, or Redis lost its data)."
    ),
}
CLUSTER_GAUGES = {
    "owned_rooms": "Rooms this worker owns (ticks).",
    "remote_rooms": "Rooms owned elsewhere with members here.",
    "peers": "Other workers this one exchanges batches with.",
    "healthy": "1 while this worker reaches Redis.",
}


def histogram(name: str, documentation: str, buckets: Buckets) -> HistogramMetricFamily:
    """A histogram family from the tick's plain counts (made cumulative here)."""
    running = 0
    cumulative: list[tuple[str, float]] = []
    for bound, count in zip((*buckets.bounds, float("inf")), buckets.counts, strict=True):
        running += count
        cumulative.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
    return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=buckets.sum)


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def by_code(name: str, documentation: str, counts: dict[int, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["code"])
    for code, count in sorted(counts.items()):
        family.add_metric([str(code)], count)
    return family


class ServerCollector(Collector):
    """Reads one app's figures when scraped."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        svc = self._services
        metrics = svc.metrics
        ticks = metrics.ticks
        registry = svc.registry
        index = worker_index()
        yield InfoMetricFamily(
            "tickrelay_worker",
            "The process that answered: its worker index under a supervisor and its pid.",
            value={"worker": "" if index is None else str(index), "pid": str(os.getpid())},
        )
        yield gauge("tickrelay_connections", "Open WebSocket connections.", metrics.connections)
        yield counter(
            "tickrelay_connections_accepted",
            "WebSocket handshakes accepted (refused joins included).",
            metrics.connections_total,
        )
        yield gauge("tickrelay_rooms", "Rooms this process runs.", len(registry.rooms))
        yield gauge(
            "tickrelay_players",
            "Seats taken in the rooms this process runs.",
            sum(room.seated for room in registry.rooms.values()),
        )
        yield counter(
            "tickrelay_joins", "Joins that took a place (resumes included).", metrics.joins
        )
        yield counter(
            "tickrelay_resumes", "Joins that resumed a place by resume token.", metrics.resumes
        )
        yield by_code("tickrelay_refusals", "Joins refused, by close code.", metrics.refused)
        yield by_code(
            "tickrelay_closes",
            "Connections the server closed after their join, by close code.",
            metrics.closed,
        )
        yield counter(
            "tickrelay_drops",
            "Members whose connection ended without a leave (their place waits for a resume).",
            metrics.drops,
        )
        yield self._slow_consumers(metrics.closed.get(4011, 0), metrics.slow_consumer_drops)
        outgoing = metrics.outgoing()
        yield counter("tickrelay_messages_sent", "Messages written to clients.", outgoing.messages)
        yield counter(
            "tickrelay_states_sent", "State messages written to clients.", outgoing.states
        )
        yield counter(
            "tickrelay_states_skipped",
            "State messages replaced by a newer one before a slow client took them.",
            outgoing.skipped_states,
        )
        yield counter("tickrelay_ticks", "Room ticks run.", ticks.ticks)
        yield histogram(
            "tickrelay_tick_lag_seconds", "How late each tick started.", ticks.lag_buckets
        )
        yield histogram(
            "tickrelay_tick_duration_seconds",
            "How long each tick's step took (inputs, logic, fan-out).",
            ticks.duration_buckets,
        )
        yield histogram(
            "tickrelay_input_ack_seconds",
            "Per tick that applied inputs: from the arrival of the first of them to the end "
            "of the tick whose state carries their acks.",
            ticks.input_wait_buckets,
        )
        yield histogram(
            "tickrelay_state_message_bytes",
            "Per tick: the size of the state message (delta, else snapshot) its members got.",
            ticks.state_bytes_buckets,
        )
        cluster = registry.cluster_stats()
        if cluster is not None:
            yield from self._cluster(cluster)

    @staticmethod
    def _slow_consumers(closed: int, dropped: int) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "tickrelay_slow_consumer_closes",
            "Clients ended for not reading: reliable queue overflowed (closed 4011), or "
            "write buffer above high water for slow_consumer_timeout (dropped).",
            labels=["reason"],
        )
        family.add_metric(["reliable_queue"], closed)
        family.add_metric(["write_buffer"], dropped)
        return family

    @staticmethod
    def _cluster(stats: dict[str, Any]) -> Iterator[Metric]:
        for key, documentation in CLUSTER_COUNTERS.items():
            yield counter(f"tickrelay_cluster_{key}", documentation, float(stats.get(key) or 0))
        for key, documentation in CLUSTER_GAUGES.items():
            yield gauge(f"tickrelay_cluster_{key}", documentation, float(stats.get(key) or 0))


def scrape_registry(services: Services) -> CollectorRegistry:
    """A registry of this app's own: apps in one process (tests) never mix their figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(services))
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and its content type in the format the scraper asks for (its ``Accept``):
    OpenMetrics for a Prometheus that prefers it, else the classic text format 0.0.4."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
