"""When PagerDuty reports an incident resolved: its timeline into the bundle, and a closing note
with time to acknowledge and to resolve against the SLA (the runbook's Incident Metrics)."""

from __future__ import annotations

import json
from datetime import datetime

from tasks.evidence.links import bundle_path
from tasks.pagerduty.client import IncidentRef
from tasks.run.response import load_run, post_note_once
from tasks.runtime import Runtime
from triage import report


class NotResolvedYet(RuntimeError):
    """The incident record does not say resolved yet."""


def close(rt: Runtime, incident_id: str, resolved_at: datetime | None, now: datetime) -> str:
    """Post the closing note for a resolved incident (once) and write its timeline.

    `resolved_at` is when the webhook said it was resolved: a record that does not say so yet
    is waited for, one reopened since then gets no closing note.
    """
    record = rt.incidents.get(incident_id)
    run_id = (record or {}).get("run_id")  # set when our pipeline started the clock
    if record is None or not run_id:
        return "no run of ours for this incident"
    if record.get("status") != "resolved":
        reopened = record.get("reopened_at")
        if resolved_at is not None and reopened and datetime.fromisoformat(reopened) > resolved_at:
            return "reopened since: no closing note"
        # The receiver queues this task before it applies the resolved event to the record.
        raise NotResolvedYet(incident_id)
    state = load_run(rt, run_id)
    times = report.from_record(record, rt.incidents.history(incident_id))
    if times is None:
        return "no clock of ours for this incident"
    content = report.closing_note(times, rt.policy)
    # Before the note, so a note that fails for good still leaves the timeline; after it
    # again, so the timeline ends with the note.
    write_timeline(rt, incident_id, state.run_id)
    incident = IncidentRef(incident_id, record.get("incident_key", ""))
    post_note_once(rt, incident, state.run_id, "closing_note", content)
    write_timeline(rt, incident_id, state.run_id)
    return content.splitlines()[0]


def write_timeline(rt: Runtime, incident_id: str, run_id: str) -> None:
    """Write the incident's history into the run's bundle as timeline.json."""
    folder = bundle_path(rt.settings.bundle_dir, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    events = rt.incidents.history(incident_id)
    (folder / "timeline.json").write_text(json.dumps(events, indent=2), encoding="utf-8")
