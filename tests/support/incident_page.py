"""An incident as the worker leaves it, for the incident page's tests: written through the
real stores (incident record and history, SLA clock, proposals) and the real bundle writer
(redaction, manifest, archive), with a real Prometheus plot.

Only what a run would have collected is made up: a failed container log, service health, a
metric series. A secret planted in them must never reach the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from collectors.contract import Evidence, Status
from collectors.plots import Series, draw, plot_window
from tasks.actions import approval
from tasks.evidence import bundle
from tasks.evidence.links import incident_link
from tasks.gateways.bundle_store import bundle_path
from tasks.runtime import Runtime
from tasks.store.sla_clock import Deadline
from triage.models import Incident, IncidentEvent

PLANTED_PASSWORD = "hunter2-planted-7Qz"  # redacted as password=... by collectors/redact.py
ON_CALL = "Dana Oncall"


@dataclass(frozen=True)
class MadeIncident:
    """What the builder made: ids, the proposal waiting for approval, and the page's path."""

    incident_id: str
    run_id: str
    proposal_id: str
    path: str  # /incidents/<id>?expires=...&sig=...


def make_incident(
    rt: Runtime,
    incident_id: str,
    now: datetime,
    *,
    update_in: timedelta = timedelta(seconds=8),
    planted: str = "",
    action: str = "stop-trading",
) -> MadeIncident:
    """Write an acknowledged P1 incident with deadlines, history, a proposal and a bundle."""
    run_id = f"{incident_id}-run1"
    triggered = now - timedelta(minutes=14)
    title = "TradingServiceDown: execution-engine is down"
    key = f"key-{incident_id}"
    incident = Incident(incident_id, title, "triggered", "high", "P2", "EAFIX", key)
    rt.incidents.apply(IncidentEvent(f"{incident_id}-t", "incident.triggered", triggered, incident))
    acknowledged = Incident(incident_id, title, "acknowledged", "high", "P2", "EAFIX", key)
    rt.incidents.apply(
        IncidentEvent(
            f"{incident_id}-a",
            "incident.acknowledged",
            triggered + timedelta(minutes=3),
            acknowledged,
            agent={"id": "PDANA", "summary": ON_CALL},
        )
    )
    rt.incidents.mark_clock(incident_id, "P1", triggered.isoformat(), run_id)
    planned = {
        "priority": "P1",
        "triggered_at": triggered.isoformat(),
        "acknowledge": (triggered + timedelta(minutes=5)).isoformat(),
        "respond": (triggered + timedelta(minutes=15)).isoformat(),
        "notify_management": (now - timedelta(minutes=3)).isoformat(),
        "next_update": (now + update_in).isoformat(),
        "resolve": (triggered + timedelta(hours=4)).isoformat(),
        "management": "notify",
    }
    running = ("notify_management", "next_update", "resolve")
    rt.clock.register(
        Deadline(incident_id, kind, planned[kind], "P1", run_id, title) for kind in running
    )
    run = {
        "run_id": run_id,
        "delivery_id": f"{incident_id}-delivery",
        "title": title,
        "classification": {
            "priority": "P1",
            "rule": "trading-service-down",
            "reason": "a service on the trading path is down while the market is open",
        },
        "deadlines": planned,
        "affected": ["execution-engine", "gui-gateway"],
        "alerts": [{"name": "TradingServiceDown", "priority": "P1", "labels": {}, "summary": ""}],
    }
    rt.redis.set(f"responder:run:{run_id}", json.dumps(run), ex=3600)
    rt.incidents.log(incident_id, "escalated to level 2", "responder", now - timedelta(minutes=4))
    rt.incidents.log(incident_id, "status update posted", "responder", now - timedelta(minutes=2))
    proposal = approval.propose(rt, action, None, incident_id, "responder", now)
    write_bundle(rt, run_id, incident_id, run, now, planted)
    secret = rt.settings.link_secret.reveal()
    expires = int((now + timedelta(hours=1)).timestamp())
    link = incident_link("", incident_id, expires, secret)
    return MadeIncident(incident_id, run_id, proposal.id, link)


def write_bundle(
    rt: Runtime, run_id: str, incident_id: str, run: dict[str, Any], now: datetime, planted: str
) -> None:
    """Write the run's bundle with the real writer: a failed collector, a plot, tables."""
    folder = bundle_path(rt.settings.bundle_dir, run_id)
    secret_line = f"connecting with password={PLANTED_PASSWORD} {planted}".strip()
    log = "\n".join(
        [
            "2026-11-29T13:01:02Z starting execution-engine",
            f"2026-11-29T13:01:03Z {secret_line}",
            "2026-11-29T13:01:04Z ERROR order router lost its connection to the gateway",
            "2026-11-29T13:01:05Z Traceback (most recent call last): KeyError 'venue'",
        ]
    )
    points = tuple(((now - timedelta(minutes=m)).timestamp(), float(m % 5)) for m in range(30))
    png = draw(
        "up", "up{job='execution-engine'}", "", [Series("execution-engine", points)],
        plot_window(now),
    )  # fmt: skip
    found = [
        Evidence(
            "docker",
            Status.FAILED,
            f"execution-engine exited (137); last error: order router lost {planted}".strip(),
            files={"docker/execution-engine.log": log},
            duration_seconds=0.42,
        ),
        Evidence(
            "http",
            Status.OK,
            "1/2 services healthy: execution-engine down",
            tables={
                "services": [
                    {
                        "service": "execution-engine",
                        "health": "down",
                        "http_status": None,
                        "error": "connection refused",
                        "trading_path": True,
                    },
                    {
                        "service": "gui-gateway",
                        "health": "ok",
                        "http_status": 200,
                        "error": "",
                        "trading_path": True,
                    },
                ]  # fmt: skip
            },
            duration_seconds=0.05,
        ),
        Evidence(
            "prometheus",
            Status.OK,
            "up: 0 of 1 targets down",
            files={"prometheus/up.png": png},
            duration_seconds=1.3,
        ),
        Evidence(
            "trading",
            Status.OK,
            "orders are not being executed: the execution engine does not answer",
            duration_seconds=0.2,
        ),
    ]
    entries = []
    for evidence in found:
        stored = bundle.store_files(folder, evidence.files, rt.redact)
        entries.append(bundle.manifest_entry(evidence, stored, rt.redact))
    header = {
        "bundle_id": run_id,
        "delivery_id": run["delivery_id"],
        "run": 1,
        "title": run["title"],
        "incident": {"id": incident_id, "incident_key": f"key-{incident_id}", "label": incident_id},
        "classification": run["classification"],
        "deadlines": run["deadlines"],
        "alerts": [],
    }
    bundle.write_manifest(folder, header, entries, now.astimezone(UTC), rt.voice.bundle_index)
    bundle.archive(folder)
