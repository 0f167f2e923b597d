"""The `prometheus` collector: the alert's own expression and the affected services' key metrics,
now and over the last hour, as JSON, CSV and a PNG plot (runbook: Data Collection, step 2)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from collectors.contract import CollectorContext, Evidence, Status, Target

NAME = "prometheus"
WINDOW = timedelta(hours=1)
STEP = "15s"
MAX_PLOTTED_SERIES = 8


def queries_for(target: Target) -> list[tuple[str, str]]:
    """Return (label, PromQL) pairs: the alert's expression, `up`, the affected key metrics."""
    queries = []
    if target.expression:
        queries.append(("alert expression", target.expression))
    queries.append(("up", "up"))
    for service in target.services:
        if service.name in target.affected:
            queries += [(f"{service.name} {m}", m) for m in service.key_metrics]
    return list(dict((expr, (label, expr)) for label, expr in queries).values())


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Query each expression at once and over the last hour; save, tabulate and plot them."""
    if not ctx.prometheus_url:
        return Evidence(NAME, Status.SKIPPED, "no Prometheus configured (RESPONDER_PROMETHEUS_URL)")
    client = PrometheusConnect(url=ctx.prometheus_url, timeout=ctx.timeout_seconds)
    end = datetime.now(UTC)
    rows, files = [], {}
    try:
        for index, (label, expression) in enumerate(queries_for(target)):
            row, query_files = query(client, label, expression, end, f"prometheus/q{index}")
            rows.append(row)
            files.update(query_files)
    except requests.RequestException as exc:
        return Evidence(NAME, Status.FAILED, ctx.redact(f"Prometheus unreachable: {_why(exc)}"))
    finally:
        client._session.close()
    failed = [r for r in rows if r["error"]]
    return Evidence(
        collector=NAME,
        status=Status.FAILED if len(failed) == len(rows) else Status.OK,
        summary=summarise(rows),
        tables={"queries": rows},
        files=files,
    )


def query(
    client: PrometheusConnect, label: str, expression: str, end: datetime, stem: str
) -> tuple[dict[str, Any], dict[str, str | bytes]]:
    """Run one expression as an instant and a range query; return its row and files."""
    row: dict[str, Any] = {"label": label, "expression": expression, "error": "", "series": 0}
    try:
        instant = client.custom_query(expression)
        matrix = client.custom_query_range(expression, end - WINDOW, end, STEP)
    except PrometheusApiClientException as exc:
        row["error"] = _api_error(exc)
        return row, {}
    row["series"] = len(matrix)
    row["now"] = _first_value(instant)
    row["then"], row["then_at"] = _first_point(matrix)
    # "1h ago" only when the series reaches back that far; else say since when.
    row["then_label"] = (
        "1h ago"
        if row["then_at"] and row["then_at"] <= (end - WINDOW).timestamp() + 60
        else f"at {datetime.fromtimestamp(row['then_at'], UTC):%H:%M}"
        if row["then_at"]
        else ""
    )
    row["instant"] = [
        {"series": _series_name(v["metric"]), "value": _float(v["value"][1])} for v in instant[:20]
    ]
    files: dict[str, str | bytes] = {
        f"{stem}.json": json.dumps({"expression": expression, "instant": instant, "range": matrix}),
        f"{stem}.csv": to_csv(matrix),
    }
    if matrix:
        files[f"{stem}.png"] = plot(label, expression, matrix, end)
    row["files"] = sorted(files)
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


def plot(label: str, expression: str, matrix: list[dict[str, Any]], end: datetime) -> bytes:
    """Draw the range result over the whole window as a PNG line chart."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, ever
    from matplotlib import dates, pyplot

    figure, axes = pyplot.subplots(figsize=(8, 3), dpi=100)
    try:
        for series in matrix[:MAX_PLOTTED_SERIES]:
            times = [datetime.fromtimestamp(float(t), UTC) for t, _ in series["values"]]
            values = [_float(v) for _, v in series["values"]]
            name = series["metric"].get("job") or _series_name(series["metric"])
            axes.plot(times, values, marker=".", label=name[:40])
        axes.set_xlim(end - WINDOW, end)
        axes.xaxis.set_major_formatter(dates.DateFormatter("%H:%M", tz=UTC))
        axes.set_title(f"{label}: {expression}"[:90], fontsize=9)
        axes.tick_params(labelsize=7)
        if len(matrix) > 1:
            axes.legend(fontsize=6, loc="upper left")
        figure.autofmt_xdate()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        pyplot.close(figure)


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


def _api_error(exc: PrometheusApiClientException) -> str:
    match = re.search(r'"error":"([^"]+)"', str(exc))
    return f"query failed: {match.group(1)}" if match else "query failed"


def _why(exc: requests.RequestException) -> str:
    return "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
