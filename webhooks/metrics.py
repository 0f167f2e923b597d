"""The receiver's own Prometheus metrics, safe under gunicorn's worker processes."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import RedisError

from tasks.backlog import Backlog
from tasks.store.deliveries import Recorded

log = logging.getLogger(__name__)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ReceiverMetrics:
    """Counters and a latency histogram; exposition merges all processes when multiprocess."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "responder_deliveries",
            "Webhook deliveries recorded, by source and outcome (started, duplicate, recorded).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "responder_duplicates",
            "Deliveries whose every dedup key had been seen before.",
            ["source"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "responder_rejections",
            "Webhook requests refused, by source and reason.",
            ["source", "reason"],
            registry=self.registry,
        )
        self.classifications = Counter(
            "responder_classifications",
            "Firing alerts and incidents classified, by priority.",
            ["priority"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "responder_request_seconds",
            "Time to answer a request, by route.",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # Labelled children, looked up once: labels() is dear on the hot path.
        self._children: dict[tuple[object, ...], Any] = {}

    def rejected(self, source: str, reason: str, response: Response) -> Response:
        """Count a refused request and return its response unchanged."""
        self._child(self.rejections, source, reason).inc()
        return response

    def accepted(self, source: str, recorded: Recorded, priorities: Iterable[str]) -> None:
        """Count a recorded delivery and its classifications."""
        if recorded.duplicate:
            outcome = "duplicate"
            self._child(self.duplicates, source).inc()
        else:
            outcome = "started" if recorded.started else "recorded"
        self._child(self.deliveries, source, outcome).inc()
        for priority in priorities:
            self._child(self.classifications, priority).inc()

    def observe(self, route: str, method: str, seconds: float) -> None:
        """Record how long one request to `route` took."""
        if method not in KNOWN_METHODS:
            method = "other"  # a client picks the method: keep the label set bounded
        self._child(self.latency, route, method).observe(seconds)

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        """Return `metric` labelled with `values`; every label set here comes from a fixed list."""
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def install(self, app: Flask) -> None:
        """Time every request and serve GET /metrics."""

        @app.before_request
        def _start_timer() -> None:
            g.started = time.perf_counter()

        @app.after_request
        def _observe(response: Response) -> Response:
            started = g.get("started")
            if started is not None:
                route = request.url_rule.rule if request.url_rule else "(unmatched)"
                self.observe(route, request.method, time.perf_counter() - started)
            return response

        app.add_url_rule("/metrics", "metrics", self.exposition)

    def watch_backlog(self, read: Callable[[], Backlog]) -> None:
        """Show the worker side's backlog too, read from Redis at each scrape."""
        self._backlog = BacklogCollector(read)
        self.registry.register(self._backlog)

    def exposition(self) -> Response:
        """Return the metrics in Prometheus text format, from every worker process."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if (backlog := getattr(self, "_backlog", None)) is not None:
                registry.register(backlog)
        else:
            registry = self.registry
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class BacklogCollector:
    """Gauges of the queues, workers, PagerDuty budget and dead letters, read at scrape time."""

    def __init__(self, read: Callable[[], Backlog]) -> None:
        self.read = read

    def describe(self) -> list[Metric]:
        """Describe nothing ahead: reading Redis at registration would fail without it."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the backlog's metrics; none when Redis cannot be read (the scrape still works)."""
        try:
            backlog = self.read()
        except RedisError as exc:
            log.warning("cannot read the backlog for /metrics: %s", type(exc).__name__)
            return
        queued = GaugeMetricFamily(
            "responder_queue_depth", "Task messages waiting, by lane.", labels=["lane"]
        )
        oldest = GaugeMetricFamily(
            "responder_oldest_waiting_seconds",
            "Age of the delivery behind the oldest waiting task, by lane (0 when none waits).",
            labels=["lane"],
        )
        for lane, depth in backlog.queued.items():
            queued.add_metric([lane.value], depth)
            oldest.add_metric([lane.value], backlog.oldest_seconds[lane] or 0.0)
        yield queued
        yield oldest
        yield GaugeMetricFamily(
            "responder_tasks_held", "Task messages workers hold (running or in a countdown).",
            value=backlog.held,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "responder_workers_alive", "Workers whose heartbeat is live.", value=backlog.workers
        )
        yield GaugeMetricFamily(
            "responder_pagerduty_requests_remaining",
            "PagerDuty REST requests left in the current 60 s window (of 960).",
            value=max(backlog.budget_limit - backlog.budget_used, 0),
        )
        yield CounterMetricFamily(
            "responder_deliveries_coalesced",
            "Deliveries that joined a running incident instead of starting a run.",
            value=backlog.coalesced,
        )
        yield GaugeMetricFamily(
            "responder_dead_letters", "Work that failed for good, waiting for an operator.",
            value=backlog.dead_letters,
        )  # fmt: skip
        yield CounterMetricFamily(
            "responder_sla_deadlines_requeued",
            "Due SLA deadlines the auditor found not acted on and queued again.",
            value=backlog.sla_requeued,
        )
        yield GaugeMetricFamily(
            "responder_beat_lease_held",
            "1 while a beat holds the beat lease (one schedules for every host), else 0.",
            value=1 if backlog.beat else 0,
        )
        yield GaugeMetricFamily(
            "responder_joined_notes_due",
            'Incidents whose "more alerts" note is scheduled.',
            value=backlog.joined_notes_due,
        )
