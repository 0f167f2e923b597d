"""The runbook's status updates: the first with the first note, then on the cadence, and the
resolution. Each is written from the incident record (the runbook's status word, a person's
ETA) and posted once through PagerDuty's status updates."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.notify.desk import run_impact
from tasks.run.state import existing_run
from tasks.runtime import Runtime
from tasks.slack_queue import tell_slack
from tasks.store.sla_clock import Deadline
from triage.incident_status import status_now
from triage.models import Priority
from triage.sla import next_status_update


def post_on_cadence(rt: Runtime, incident: IncidentRef, deadline: Deadline, now: datetime) -> str:
    """Post the status update due at `deadline` (once) and register the next one on the cadence."""
    due = datetime.fromisoformat(deadline.due)
    next_at = next_status_update(Priority(deadline.priority), due, now, rt.policy)
    record = rt.incidents.get(deadline.incident_id) or {}
    message = rt.voice.status_update(
        deadline.incident_id,
        status_now(record, now),
        deadline.title,
        next_at,
        deadline.priority,
        *impact(rt, deadline.run_id),
    )
    effect = f"{deadline.kind}@{deadline.due}:status-update"
    if not rt.deliveries.effect_done(deadline.incident_id, effect):
        rt.pagerduty.status_update(incident, message)
        what = lines.timeline("status_update_posted")
        rt.incidents.log(deadline.incident_id, what, "responder")
        rt.deliveries.mark_effect(deadline.incident_id, effect)
        key = f"{deadline.incident_id}/{effect}"
        tell_slack(rt, {"what": "note", "incident_id": deadline.incident_id, "key": key,
                        "text": rt.redact(message)})  # fmt: skip
    rt.clock.register([replace(deadline, due=next_at.isoformat())])
    return f"status update posted; next at {next_at:%Y-%m-%d %H:%M} UTC"


def post_resolution(
    rt: Runtime, incident: IncidentRef, run_id: str, title: str, now: datetime
) -> str:
    """Post the "Status: Resolved" update of a resolved incident once per run ("Resolution
    notification: Within 15 minutes of fix")."""
    record = rt.incidents.get(str(incident.id)) or {}
    status = status_now(record, now)
    effect = "resolution:status-update"
    if rt.deliveries.effect_done(run_id, effect):
        return "resolution update already posted"
    priority = str(record.get("sla_priority") or "")
    message = rt.voice.status_update(
        str(incident.id), status, title, None, priority, *impact(rt, run_id)
    )
    rt.pagerduty.status_update(incident, message)
    if incident.id:
        what = lines.timeline("status_update_posted", word=status.word)
        rt.incidents.log(incident.id, what, "responder")
    rt.deliveries.mark_effect(run_id, effect)
    if incident.id:  # the thread hears it, and its parent says resolved
        request = {"what": "note", "incident_id": incident.id, "key": f"{run_id}/{effect}"}
        tell_slack(rt, {**request, "text": rt.redact(message)})
        tell_slack(rt, {"what": "status", "incident_id": incident.id})
    return f"status update posted: {status.word}"


def impact(rt: Runtime, run_id: str) -> tuple[list[str], str]:
    """Return the runbook's Impact of a run: the services affected and the trading impact."""
    state = existing_run(rt, run_id) if run_id else None
    services = (state.affected or state.services) if state else []
    return list(services), run_impact(rt, run_id).describe()
