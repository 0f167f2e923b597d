"""The `trading` collector: the runbook's Trading Impact Assessment through the catalog's
endpoints (open positions, reconciliation, recent signals and executions)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from collectors.contract import CollectorContext, Evidence, Status, Target
from triage.policy import Service, service_endpoint

NAME = "trading"


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """GET every trading endpoint the catalog names; say what they show about trading."""
    calls = [
        (service, name, path)
        for service in target.services
        for name, path in service.endpoints.items()
    ]
    if not calls:
        return Evidence(NAME, Status.SKIPPED, "the catalog names no trading endpoints")
    # At once: in an outage each endpoint may take the whole timeout, and there are several.
    with requests.Session() as session, ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda call: fetch(session, *call, ctx), calls))
    rows, files = [], {}
    for (service, name, _), (row, body) in zip(calls, answers, strict=True):
        rows.append(row)
        if body is not None:
            files[f"trading/{service.name}-{name}.json"] = json.dumps(body, indent=2)
    problems = [r for r in rows if r["problem"]]
    return Evidence(
        collector=NAME,
        status=Status.FAILED if problems else Status.OK,
        summary="; ".join(r["finding"] for r in rows),
        tables={"endpoints": rows},
        files=files,
    )


def fetch(
    session: requests.Session, service: Service, name: str, path: str, ctx: CollectorContext
) -> tuple[dict[str, Any], Any]:
    """GET one trading endpoint on the catalog's host; return its row and its JSON (or None)."""
    url = service_endpoint(service, path)  # the catalog's host, the catalog's path
    row: dict[str, Any] = {"service": service.name, "endpoint": name, "path": path}
    try:
        response = session.get(url, timeout=ctx.timeout_seconds, allow_redirects=False)
        body = response.json() if response.ok else None
        row["http_status"] = response.status_code
    except (requests.RequestException, ValueError) as exc:
        body, row["error"] = None, f"{type(exc).__name__}"
    row["finding"], row["problem"] = judge(name, body, row)
    row.update(impact_counts(name, body))
    return row, body


FAILED_ORDER_STATUSES = frozenset({"failed", "rejected", "error", "cancelled_by_risk"})


def impact_counts(name: str, body: Any) -> dict[str, int]:
    """Return the counts the trading desk is called for: open positions, failed orders.

    The runbook's "Are positions at risk? (Check open positions)" and "Are orders executing?
    (Check recent order activity)"; `triage.communication.trading_impact` reads them.
    """
    if not isinstance(body, list):
        return {}
    items = [item for item in body if isinstance(item, dict)]
    if name == "positions":
        return {"open_positions": sum(item.get("status") == "open" for item in items)}
    if name == "executions":
        failed = sum(str(item.get("status", "")).lower() in FAILED_ORDER_STATUSES for item in items)
        return {"failed_orders": failed}
    return {}


def judge(name: str, body: Any, row: dict[str, Any]) -> tuple[str, bool]:
    """Return a one-phrase finding for an endpoint's answer, and whether it is a problem."""
    if body is None:
        why = row.get("error") or f"HTTP {row.get('http_status')}"
        return f"{name}: unavailable ({why})", True
    if name == "positions" and isinstance(body, list):
        open_ = [p for p in body if isinstance(p, dict) and p.get("status") == "open"]
        return f"{len(open_)} open positions", False
    if name == "reconcile" and isinstance(body, dict):
        status = str(body.get("status", "?"))
        mismatches = body.get("mismatches") or []
        detail = f" ({', '.join(map(str, mismatches))})" if mismatches else ""
        return f"reconciliation {status}{detail}", status != "ok"
    if name == "executions" and isinstance(body, list):
        failed = impact_counts(name, body)["failed_orders"]
        return f"{len(body)} recent executions, {failed} failed", failed > 0
    if isinstance(body, list):
        return f"{len(body)} recent {name}", False
    return (
        f"{name}: {str(body.get('status', 'answered')) if isinstance(body, dict) else 'answered'}",
        False,
    )
