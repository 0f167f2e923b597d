"""The `prometheus` collector: the alert's own expression and the affected services' key metrics,
now and over the plot's window (at least the last hour), as JSON, CSV and a PNG plot with the
alert rule's threshold (runbook: Data Collection, step 2)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from collectors.contract import CollectorContext, Evidence, Status, Target
from collectors.plots import HEIGHT_PX, LEAST, WIDTH_PX, Series, Window, draw, frame, plot_window
from collectors.promql import Threshold, split_threshold, unit_of

NAME = "prometheus"
WINDOW = LEAST  # the window reaches back at least this far (collectors.plots.plot_window)


@dataclass(frozen=True)
class Query:
    """One expression to query and plot, with the alert rule's threshold when it is known."""

    label: str
    expression: str
    threshold: Threshold | None = None
    threshold_source: str = ""
    title: str = ""  # the plot's title, when not the label

    @property
    def heading(self) -> str:
        """Return the plot's title."""
        return self.title or self.label


def queries_for(target: Target, rules: Sequence[AlertRule] = ()) -> list[Query]:
    """Return the queries: the alert's expression, `up`, the affected services' key metrics.

    An alert rule `metric > 30` is queried as `metric` (the comparison would keep only the
    points past the threshold) and its threshold is drawn on every plot of that metric.
    """
    rule_expression, source = alert_expression(target, rules)
    threshold = split_threshold(rule_expression) if rule_expression else None
    queries = []
    if rule_expression:
        shown = threshold.metric if threshold else rule_expression
        queries.append(
            Query(
                "alert expression", shown, threshold, source if threshold else "",
                title=target.alert_name,
            )
        )  # fmt: skip
    queries.append(Query("up", "up"))
    for service in target.services:
        if service.name in target.affected:
            queries += [Query(f"{service.name} {m}", m) for m in service.key_metrics]
    unique: dict[str, Query] = {}
    for item in queries:
        if threshold and _same(item.expression, threshold.metric):
            item = Query(item.label, item.expression, threshold, source, item.title)
        unique.setdefault(_normal(item.expression), item)
    return list(unique.values())


@dataclass(frozen=True)
class AlertRule:
    """An alerting rule as Prometheus reports it (`/api/v1/rules`)."""

    name: str
    query: str


def alert_expression(target: Target, rules: Sequence[AlertRule]) -> tuple[str, str]:
    """Return the alert's rule expression and where it came from ("", "" when unknown).

    The alert's name only picks among the rules Prometheus has, by exact name; of several rules
    with that name, the one whose expression the alert carries. Without a match, the
    expression the alert carried (its generatorURL) is used as it is.
    """
    named = [rule for rule in rules if rule.name == target.alert_name]
    exact = [rule for rule in named if _same(rule.query, target.expression)]
    if exact or len(named) == 1:
        return (exact or named)[0].query, f"Prometheus rule {target.alert_name}"
    if target.expression:
        return target.expression, "the alert's expression"
    return "", ""


def fetch_rules(client: PrometheusConnect, timeout: float) -> list[AlertRule]:
    """Return Prometheus's alerting rules; none when it cannot say (no threshold is drawn)."""
    try:
        answer = client._session.get(
            f"{client.url}/api/v1/rules", params={"type": "alert"}, timeout=timeout
        )
        answer.raise_for_status()
        groups = answer.json()["data"]["groups"]
        return [
            AlertRule(str(rule["name"]), str(rule["query"]))
            for group in groups
            for rule in group.get("rules", [])
            if rule.get("type") == "alerting"
        ]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return []


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Query each expression at once and over the plot's window; save, tabulate and plot them."""
    if not ctx.prometheus_url:
        return Evidence(NAME, Status.SKIPPED, "no Prometheus configured (RESPONDER_PROMETHEUS_URL)")
    client = PrometheusConnect(url=ctx.prometheus_url, timeout=ctx.timeout_seconds)
    end = datetime.now(UTC)
    window = plot_window(end, target.started_at)
    rows, plotted, files = [], [], {}
    try:
        rules = fetch_rules(client, ctx.timeout_seconds) if target.alert_name else []
        for index, item in enumerate(queries_for(target, rules)):
            stem = f"prometheus/q{index}"
            row, query_files = query(client, item, window, target.started_at, stem)
            rows.append(row)
            files.update(query_files)
            plotted += row.pop("plot", [])
    except requests.RequestException as exc:
        why = unreachable_reason(exc)
        return Evidence(NAME, Status.FAILED, ctx.redact(f"Prometheus unreachable: {why}"))
    finally:
        client._session.close()
    failed = [r for r in rows if r["error"]]
    return Evidence(
        collector=NAME,
        status=Status.FAILED if len(failed) == len(rows) else Status.OK,
        summary=summarise(rows),
        tables={"queries": rows, "plots": plotted},
        files=files,
    )


def query(
    client: PrometheusConnect,
    item: Query,
    window: Window,
    alert_start: datetime | None,
    stem: str,
) -> tuple[dict[str, Any], dict[str, str | bytes]]:
    """Run one expression as an instant and a range query; return its row and files.

    The row's `plot` holds what the plot shows (window, threshold, samples), for the manifest.
    """
    label, expression = item.label, item.expression
    row: dict[str, Any] = {"label": label, "expression": expression, "error": "", "series": 0}
    try:
        instant = client.custom_query(expression)
        matrix = client.custom_query_range(
            expression, window.start, window.end, f"{window.step_seconds}s"
        )
    except PrometheusApiClientException as exc:
        row["error"] = api_error(exc)
        return row, {}
    row["series"] = len(matrix)
    row["now"] = _first_value(instant)
    row["then"], row["then_at"] = _first_point(matrix)
    # "1h ago" only when the series starts about then; else say since when.
    row["then_label"] = (
        "1h ago"
        if row["then_at"] and abs(row["then_at"] - (window.end - WINDOW).timestamp()) <= 60
        else f"at {datetime.fromtimestamp(row['then_at'], UTC):%H:%M}"
        if row["then_at"]
        else ""
    )
    row["instant"] = [
        {"series": _series_name(v["metric"]), "value": _float(v["value"][1])} for v in instant[:20]
    ]
    if item.threshold is not None:
        row["threshold"] = item.threshold.value
    series = [
        Series(
            series["metric"].get("job") or _series_name(series["metric"]),
            tuple((float(t), _float(v)) for t, v in series["values"]),
        )
        for series in matrix
    ]
    unit = unit_of(expression)
    png = draw(item.heading, expression, unit, series, window, item.threshold, alert_start)
    shape = frame(series, window, item.threshold.value if item.threshold else None)
    files: dict[str, str | bytes] = {
        f"{stem}.json": json.dumps({"expression": expression, "instant": instant, "range": matrix}),
        f"{stem}.csv": to_csv(matrix),
        f"{stem}.png": png,
    }
    row["files"] = sorted(files)
    row["plot"] = [
        {
            "file": f"{stem}.png",
            "title": item.heading,
            "expression": expression,
            "unit": unit,
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "step_seconds": window.step_seconds,
            "alert_start": alert_start.isoformat() if alert_start else None,
            "threshold": (
                {
                    "value": item.threshold.value,
                    "op": item.threshold.op,
                    "label": item.threshold.describe(),
                    "source": item.threshold_source,
                }
                if item.threshold
                else None
            ),
            "series": len(matrix),
            "samples": shape.samples,
            "note": shape.note,
            "width": WIDTH_PX,
            "height": HEIGHT_PX,
        }
    ]
    return row, files


def to_csv(matrix: list[dict[str, Any]]) -> str:
    """Return a range result as CSV: timestamp, series labels, value."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["timestamp", "series", "value"])
    for series in matrix:
        name = _series_name(series["metric"])
        for stamp, value in series["values"]:
            writer.writerow([datetime.fromtimestamp(float(stamp), UTC).isoformat(), name, value])
    return out.getvalue()


def summarise(rows: list[dict[str, Any]]) -> str:
    """Say in one line what the metrics show now against an hour ago."""
    parts = []
    for row in rows:
        if row["error"]:
            parts.append(f"{row['label']}: {row['error']}")
        elif row["label"] == "up":
            continue
        elif row.get("now") is not None:
            was = row.get("then")
            then = f" ({row['then_label']} {_fmt(was)})" if was is not None else ""
            parts.append(f"{row['label']} now {_fmt(row['now'])}{then}")
        else:
            parts.append(f"{row['label']}: no data")
    up = next((r for r in rows if r["label"] == "up" and not r["error"]), None)
    if up is not None:
        parts.insert(0, up_summary(up.get("instant", [])))
    return "; ".join(parts) if parts else "no queries"


def up_summary(instant: list[dict[str, Any]]) -> str:
    """Say how many scrape targets are up and name the jobs that are down."""
    down = [i["series"] for i in instant if i["value"] != 1]
    jobs = [re.search(r'job="([^"]+)"', name) for name in down]
    named = ", ".join(m.group(1) for m in jobs if m) or ", ".join(down)
    line = f"{len(instant) - len(down)}/{len(instant)} targets up"
    return f"{line} (down: {named})" if down else line


def _first_value(vector: list[dict[str, Any]]) -> float | None:
    return _float(vector[0]["value"][1]) if vector else None


def _first_point(matrix: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    if not matrix or not matrix[0]["values"]:
        return None, None
    stamp, value = matrix[0]["values"][0]
    return _float(value), float(stamp)


def _series_name(metric: dict[str, str]) -> str:
    name = metric.get("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels else name or "{}"


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def api_error(exc: PrometheusApiClientException) -> str:
    """Return Prometheus's own reason for a failed query, as a row or summary says it."""
    match = re.search(r'"error":"([^"]+)"', str(exc))
    return f"query failed: {match.group(1)}" if match else "query failed"


def _normal(expression: str) -> str:
    return re.sub(r"\s+", "", expression)


def _same(one: str, other: str) -> bool:
    return bool(one) and _normal(one) == _normal(other)


def unreachable_reason(exc: requests.RequestException) -> str:
    """Return why Prometheus could not be reached: refused, or the exception's name."""
    return "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
