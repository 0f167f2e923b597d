"""When PagerDuty reports an incident resolved: its timeline into the bundle, and a closing note
with time to acknowledge and to resolve against the SLA (the runbook's Incident Metrics)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from tasks import bundle
from tasks.deliveries import PREFIX
from tasks.pagerduty_client import IncidentRef
from tasks.response import load_run, post_note_once
from tasks.runtime import Runtime
from triage.models import Priority
from triage.policy import format_duration
from triage.sla import deadlines


class NotResolvedYet(RuntimeError):
    """The incident record does not say resolved (yet, or any more after a reopen)."""


def close(rt: Runtime, incident_id: str, now: datetime) -> str:
    """Post the closing note for a resolved incident (once) and write its timeline."""
    record = rt.incidents.get(incident_id)
    raw_run = rt.redis.get(f"{PREFIX}incident-run:{incident_id}")
    if record is None or raw_run is None:
        return "no run of ours for this incident"
    if record.get("status") != "resolved":
        # The receiver queues this task before it applies the resolved event to the record.
        raise NotResolvedYet(incident_id)
    state = load_run(rt, raw_run.decode())
    priority = Priority(state.classification["priority"])
    content = closing_note(
        priority, record, rt, datetime.fromisoformat(state.deadlines["triggered_at"])
    )
    incident = IncidentRef(incident_id, record.get("incident_key", ""))
    post_note_once(rt, incident, state.run_id, "closing_note", content)
    # After the note, so the timeline ends with it; a retry rewrites the same file.
    folder = bundle.bundle_path(rt.settings.bundle_dir, state.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    events = timeline(rt, incident_id)
    (folder / "timeline.json").write_text(json.dumps(events, indent=2), encoding="utf-8")
    return content.splitlines()[0]


def timeline(rt: Runtime, incident_id: str) -> list[dict[str, str]]:
    """Return what happened, in order: PagerDuty's moments and what the responder did."""
    return rt.incidents.history(incident_id)


def closing_note(priority: Priority, record: dict[str, Any], rt: Runtime, started: datetime) -> str:
    """Say how long acknowledgement and resolution took against the SLA."""
    targets = rt.policy.sla[priority]
    due = deadlines(priority, started, rt.policy)
    lines = [f"[{priority}] Resolved. Incident metrics against the SLA:"]
    for moment, span, deadline in (
        ("acknowledged", targets.acknowledge, due.acknowledge),
        ("resolved", targets.resolve, due.resolve),
    ):
        at = record.get(f"{moment}_at")
        if not at:
            lines.append(f"- {moment}: not recorded")
            continue
        happened = datetime.fromisoformat(at)
        took = format_duration(max(happened - started, timedelta(0)))
        verdict = "met" if happened <= deadline else "MISSED"
        lines.append(f"- {moment} after {took} (SLA {span}: {verdict})")
    lines.append("The timeline is in the bundle (timeline.json).")
    return "\n".join(lines)
