"""When PagerDuty reports an incident resolved: its timeline into the bundle, a closing note with
time to acknowledge and to resolve against the SLA (the runbook's Incident Metrics), and the
"Status: Resolved" status update."""

from __future__ import annotations

import json
from datetime import datetime

from tasks.actions import recheck
from tasks.evidence.shared_bundle import publish_bundle
from tasks.gateways.bundle_store import bundle_path
from tasks.gateways.pagerduty import IncidentRef, outbox_incident_id
from tasks.notify import desk
from tasks.pagerduty.notes import post_note_once
from tasks.run.resolution import validation_failed
from tasks.run.state import existing_run
from tasks.runtime import Runtime
from tasks.sla import incident_events, status_updates
from triage import report
from triage.models import Incident, IncidentEvent, parse_alertmanager, parse_pagerduty


def close(rt: Runtime, incident_id: str, resolved_at: datetime | None, now: datetime) -> str:
    """Post the closing note for a resolved incident (once) and write its timeline.

    `resolved_at` is when the webhook said it was resolved. The caller has applied that event
    to the record (the receiver, or the closing task itself): a record that no longer says
    resolved was reopened since, and gets no closing note.
    """
    record = rt.incidents.get(incident_id)
    if record is not None and record.get("status") == "resolved":
        withdraw_proposals(rt, incident_id, str(record.get("incident_key") or ""), now)
    run_id = (record or {}).get("run_id")  # set when our pipeline started the clock
    if record is None or not run_id:
        return "no run of ours for this incident"
    if record.get("status") != "resolved":
        reopened = record.get("reopened_at")
        if resolved_at is not None and reopened and datetime.fromisoformat(reopened) > resolved_at:
            return "reopened since: no closing note"
        return f"the record says {record.get('status')}, not resolved: no closing note"
    times = report.from_record(record, rt.incidents.history(incident_id))
    if times is None:
        return "no clock of ours for this incident"
    content = rt.voice.closing(times)
    # Before the note, so a note that fails for good still leaves the timeline; after it
    # again, so the timeline ends with the note.
    write_timeline(rt, incident_id, run_id)
    incident = IncidentRef(incident_id, record.get("incident_key", ""))
    post_note_once(rt, incident, run_id, "closing_note", content)
    # "Resolution notification: Within 15 minutes of fix": this task runs on the resolve event.
    run = existing_run(rt, run_id)  # its title, while the run's state is kept (48 h)
    title = run.title if run is not None else str(record.get("title") or incident_id)
    status_updates.post_resolution(rt, incident, run_id, title, now)
    # "Trading Desk: Email summary within 1 hour of resolution": due now, sent at the clock's
    # next tick, on the incident's lane, with the timeline written above.
    rt.clock.register(desk.summary_deadline(rt, incident_id, record, title, now))
    write_timeline(rt, incident_id, run_id)
    return content.splitlines()[0]


def withdraw_proposals(rt: Runtime, incident_id: str, incident_key: str, now: datetime) -> int:
    """Withdraw a resolved incident's waiting proposals; note what was withdrawn (once)."""
    withdrawn = recheck.withdraw_waiting(rt, incident_id, now)
    if withdrawn:
        listed = [{"id": p.id, "action": p.action, "target": p.target} for p in withdrawn]
        note = rt.voice.actions_withdrawn(incident_id, listed)
        key = "proposals_withdrawn:" + ",".join(p.id for p in withdrawn)
        post_note_once(rt, IncidentRef(incident_id, incident_key), incident_id, key, note)
    return len(withdrawn)


def close_resolved(rt: Runtime, delivery_id: str, now: datetime) -> str:
    """Apply the stored resolved event of `delivery_id` to its incident, then close it.

    The receiver queues this task in the same step that records the delivery, and applies
    the event itself just after: whichever comes first applies it (the second changes
    nothing), so the task never waits for the receiver.
    """
    delivery = rt.deliveries.load(delivery_id)
    if delivery is None:
        return "delivery gone"
    event = parse_pagerduty(delivery.payload())
    if event.incident is None:
        return "no incident in the event"
    incident_events.apply_event(rt, event)
    return close(rt, event.incident.id, event.occurred_at or now, now)


def close_in_outbox(rt: Runtime, delivery_id: str, now: datetime) -> str:
    """In outbox mode, resolve and close the outbox incident of a group that fully resolved.

    Against PagerDuty the incident's own `incident.resolved` webhook closes it; the outbox has
    no such webhook, so Alertmanager's resolution of the whole group stands in for it, and the
    SLA clock stops and the report counts the resolution on a laptop too.
    """
    if not rt.settings.outbox_mode:
        return "not in outbox mode"
    delivery = rt.deliveries.load(delivery_id)
    if delivery is None:
        return "delivery gone"
    group = parse_alertmanager(delivery.payload())
    if group.firing or group.status != "resolved" or group.truncated_alerts:
        return "alerts still firing"  # (alerts Alertmanager left out may still fire)
    if validation_failed(rt, delivery_id):
        # The resolved note said it stays open: the alerts cleared, the system is not well.
        return "left open: the Validation found a problem"
    incident = Incident(
        id=outbox_incident_id(delivery.incident_key),
        title=group.alerts[0].name,
        status="resolved",
        incident_key=delivery.incident_key,
    )
    resolved_at = max(alert.ends_at or now for alert in group.alerts)
    agent = {"summary": "Alertmanager (the whole group resolved)"}
    resolution = IncidentEvent(
        f"outbox:{delivery_id}", "incident.resolved", resolved_at, incident, agent=agent
    )
    incident_events.apply_event(rt, resolution)
    return close(rt, incident.id, resolved_at, now)


def write_timeline(rt: Runtime, incident_id: str, run_id: str) -> None:
    """Write the incident's history into the run's bundle as timeline.json."""
    folder = bundle_path(rt.settings.bundle_dir, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    events = rt.incidents.history(incident_id)
    # Like every bundle file: no secret, whatever a person's note or a service's answer held.
    text = rt.redact(json.dumps(events, indent=2))
    (folder / "timeline.json").write_text(text, encoding="utf-8")
    # The timeline is a file of the bundle: the incident page reads it from the store.
    publish_bundle(rt, folder, run_id, ["timeline.json"])
