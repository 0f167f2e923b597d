"""The `performance` collector: Root Cause Analysis, Performance Issues 3 and 4.

    3. Review message queue depths
    4. Check network latency between services

Two PromQL queries the policy names (`diagnostics.queue_depth`, `diagnostics.edge_latency`), run
as instant queries on the Prometheus the `prometheus` collector reads. Their series are matched
to the catalog by label: a queue by its `service` label, an edge by its `upstream` and `service`
labels. Every catalog service and every topology edge gets a row (no data says so); a series
that names something outside the catalog is not reported. The answer says which queue is deep
and which edge is slow.
"""

from __future__ import annotations

import json
import math
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from collectors.contract import CollectorContext, Evidence, Status, Target
from collectors.prometheus_metrics import api_error, unreachable_reason
from triage.diagnostics import SeriesQuery, edge_name, judge_series, topology_edges

NAME = "performance"


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Run the queue-depth and edge-latency queries; say which queue is deep, which edge slow."""
    if not ctx.prometheus_url:
        return Evidence(NAME, Status.SKIPPED, "no Prometheus configured (RESPONDER_PROMETHEUS_URL)")
    diagnostics = ctx.diagnostics
    services = [service.name for service in target.services]
    edges = topology_edges({s.name: s.depends_on for s in target.services})
    client = PrometheusConnect(url=ctx.prometheus_url, timeout=ctx.timeout_seconds)
    try:
        queues, queue_error = run_query(client, diagnostics.queue_depth, ("service",))
        latency, edge_error = run_query(client, diagnostics.edge_latency, ("upstream", "service"))
    except requests.RequestException as exc:
        why = unreachable_reason(exc)
        return Evidence(NAME, Status.FAILED, ctx.redact(f"Prometheus unreachable: {why}"))
    finally:
        client._session.close()
    queue_rows = judge_series(
        services, {key[0]: v for key, v in queues.items()}, diagnostics.queue_depth.over, ""
    )
    edge_rows = judge_series(
        [edge_name(*edge) for edge in edges],
        {edge_name(*key): v for key, v in latency.items()},
        diagnostics.edge_latency.over,
        "seconds",
    )
    for row in queue_rows:
        row["threshold"] = diagnostics.queue_depth.over
    for row in edge_rows:
        row["threshold"] = diagnostics.edge_latency.over
    over = [r for r in (*queue_rows, *edge_rows) if r["state"] == "over"]
    errors = [e for e in (queue_error, edge_error) if e]
    tables = {
            "queues": queue_rows,
            "edges": edge_rows,
            "queries": [
                {
                    "what": "queue depth",
                    "expression": diagnostics.queue_depth.query,
                    "runbook": diagnostics.queue_depth.runbook,
                    "error": queue_error,
                },
                {
                    "what": "edge latency p99",
                    "expression": diagnostics.edge_latency.query,
                    "runbook": diagnostics.edge_latency.runbook,
                    "error": edge_error,
                },
            ],
    }  # fmt: skip
    return Evidence(
        collector=NAME,
        status=Status.FAILED if over or len(errors) == 2 else Status.OK,
        summary=summarise(queue_rows, edge_rows, queue_error, edge_error, diagnostics),
        tables=tables,
        files={"performance/queues_and_edges.json": json.dumps(tables, indent=2)},
    )


def run_query(
    client: PrometheusConnect, query: SeriesQuery, labels: tuple[str, ...]
) -> tuple[dict[tuple[str, ...], float], str]:
    """Run one instant query; return each series' value by the labels named, and any error."""
    try:
        vector = client.custom_query(query.query)
    except PrometheusApiClientException as exc:
        return {}, api_error(exc)
    values: dict[tuple[str, ...], float] = {}
    for series in vector:
        key = tuple(series.get("metric", {}).get(label, "") for label in labels)
        if all(key):
            value = _float(series["value"][1])
            # Of two series with the same labels the larger counts: the worst is the finding.
            if not math.isnan(value) and (key not in values or value > values[key]):
                values[key] = value
    return values, ""


def summarise(
    queue_rows: list[dict[str, Any]],
    edge_rows: list[dict[str, Any]],
    queue_error: str,
    edge_error: str,
    diagnostics: Any,
) -> str:
    """Say which queues are deep and which edges slow, against their thresholds."""
    parts = []
    deep = [r for r in queue_rows if r["state"] == "over"]
    slow = [r for r in edge_rows if r["state"] == "over"]
    if queue_error:
        parts.append(f"queue depths: {queue_error}")
    elif deep:
        shown = ", ".join(f"{r['name']} {r['shown']}" for r in _worst(deep))
        parts.append(f"deep queues (over {diagnostics.queue_depth.over:g}): {shown}")
    else:
        parts.append(_quiet("queues", queue_rows, f"none over {diagnostics.queue_depth.over:g}"))
    if edge_error:
        parts.append(f"edge latency: {edge_error}")
    elif slow:
        shown = ", ".join(f"{r['name']} p99 {r['shown']}" for r in _worst(slow))
        parts.append(f"slow edges (p99 over {diagnostics.edge_latency.over:g} s): {shown}")
    else:
        limit = f"none over {diagnostics.edge_latency.over:g} s"
        parts.append(_quiet("edges", edge_rows, limit))
    return "; ".join(parts)


def _quiet(what: str, rows: list[dict[str, Any]], limit: str) -> str:
    measured = [r for r in rows if r["value"] is not None]
    if not measured:
        return f"{what}: no data for any of {len(rows)}"
    return f"{what}: {limit} ({len(measured)} of {len(rows)} measured)"


def _worst(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: -r["value"])


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def measure(prometheus_url: str, expression: str, timeout: float) -> tuple[float | None, str]:
    """Return the first value an instant query gives now, or None and why there is none.

    Validation 4's measurement: the caller judges it (triage.diagnostics.judge_latency).
    """
    if not prometheus_url:
        return None, "no Prometheus configured (RESPONDER_PROMETHEUS_URL)"
    client = PrometheusConnect(url=prometheus_url, timeout=timeout)
    try:
        vector = client.custom_query(expression)
    except PrometheusApiClientException as exc:
        return None, api_error(exc)
    except requests.RequestException as exc:
        return None, f"Prometheus unreachable: {unreachable_reason(exc)}"
    finally:
        client._session.close()
    values = [_float(series["value"][1]) for series in vector]
    measured = [value for value in values if not math.isnan(value)]
    if not measured:
        # histogram_quantile over no observations is NaN: nothing was measured.
        return None, "Prometheus has no samples for the query" if values else ""
    return max(measured), ""
