"""The `http` collector: health endpoints of the catalog's services (runbook step 1)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from collectors.contract import CollectorContext, Evidence, Status, Target
from triage.policy import Service

NAME = "http"
BODY_EXCERPT_CHARS = 300
_KNOWN_CAUSES = (
    "Connection refused",
    "Name or service not known",
    "Temporary failure in name resolution",
    "No route to host",
)


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Check the health URL of each target service in parallel, each within the timeout."""
    if not target.services:
        return Evidence(NAME, Status.SKIPPED, "no catalog service selected")
    with requests.Session() as session, ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(lambda s: check(session, s, ctx), target.services))
    # A health check fails when any service is not healthy, reachable or not; when the only
    # trouble is services too slow to answer, it is a timeout.
    unhealthy = [r for r in rows if r["health"] != "ok"]
    slow = [r for r in unhealthy if r["error"].startswith("no answer within")]
    status = Status.OK if not unhealthy else Status.TIMEOUT if slow == unhealthy else Status.FAILED
    return Evidence(
        collector=NAME,
        status=status,
        summary=summarise(rows),
        tables={"services": rows},
        files={"http/health.json": json.dumps(rows, indent=2)},
    )


def check(session: requests.Session, service: Service, ctx: CollectorContext) -> dict[str, Any]:
    """GET one service's health URL without following redirects; never raise."""
    started = time.monotonic()
    row: dict[str, Any] = {
        "service": service.name,
        "url": ctx.redact(service.health_url),
        "trading_path": service.trading_path,
        "http_status": None,
        "health": "unknown",
        "latency_ms": 0.0,
        "error": "",
        "body": "",
    }
    try:
        response = session.get(
            service.health_url, timeout=ctx.timeout_seconds, allow_redirects=False
        )
    except requests.Timeout:
        row["error"] = f"no answer within {ctx.timeout_seconds:g}s"
    except requests.ConnectionError as exc:
        row["error"] = f"cannot connect: {_root_cause(exc)}"
    except requests.RequestException as exc:
        row["error"] = f"request failed: {type(exc).__name__}"
    else:
        row["http_status"] = response.status_code
        row["body"] = ctx.redact(response.text[:BODY_EXCERPT_CHARS])
        row["health"] = health_of(response.status_code, response.text)
    row["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    if row["error"]:
        row["health"] = "unreachable"
    return row


def health_of(http_status: int, body: str) -> str:
    """Return the health a service reports: its JSON `status`, else judged by the HTTP code."""
    try:
        reported = json.loads(body).get("status")
    except (ValueError, AttributeError):
        reported = None
    if isinstance(reported, str) and reported:
        return reported.lower()
    return "ok" if 200 <= http_status < 300 else f"http {http_status}"


def summarise(rows: list[dict[str, Any]]) -> str:
    """Say in one line how many services are healthy and what is wrong with the others."""
    healthy = sum(1 for r in rows if r["health"] == "ok")
    by_problem: dict[str, list[str]] = {}
    for row in rows:
        if row["health"] != "ok":
            by_problem.setdefault(row["error"] or row["health"], []).append(row["service"])
    line = f"{healthy}/{len(rows)} services healthy"
    problems = [f"{', '.join(names)} {problem}" for problem, names in by_problem.items()]
    return "; ".join([line, *problems])


def _root_cause(exc: BaseException) -> str:
    text = str(exc)
    for marker in _KNOWN_CAUSES:
        if marker in text:
            return marker.lower()
    return type(exc).__name__
