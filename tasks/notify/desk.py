"""The trading desk: "Immediate notification for P0/P1 incidents during market hours", "Phone
call for critical trading impacts", "Email summary within 1 hour of resolution".

Each is a deadline of the SLA clock (durable, on the incident's lane, locked while acted on,
retried, dead-lettered), acted on by `act`:
- `desk_alert`, due when the incident triggered (registered with the run's other deadlines,
  `tasks.run.first_response.start_clock`): an e-mail at the next tick, seconds later;
- `desk_call`, due when the evidence shows open positions at risk or orders failing: a
  PagerDuty responder request to the policy's target (PagerDuty places the call), once;
- `desk_summary`, due when the incident resolves: what happened, the impact, the timeline,
  acknowledge and resolve against the SLA, the bundle; threaded under the alert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.evidence.links import bundle_location
from tasks.gateways.email_compose import Mail
from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.notify.email_send import send_once
from tasks.pagerduty.notes import post_note_once
from tasks.pagerduty.responders import (
    ResponderRequest,
    describe_targets,
    request_responders_once,
)
from tasks.run.state import RunState, existing_run
from tasks.runtime import Runtime
from tasks.store import runs
from tasks.store.sla_clock import Deadline
from triage import report
from triage.communication import (
    DESK_ALERT,
    DESK_CALL,
    DESK_SUMMARY,
    TradingImpact,
    desk_call_reasons,
    desk_told,
    recipients,
    trading_impact,
)
from triage.models import Priority
from triage.sla import deadlines

DESK_CALL_EFFECT = "desk-call"  # the responder request's once-marker, kept per incident
KINDS = (DESK_ALERT, DESK_CALL, DESK_SUMMARY)
TIMELINE_LINES = 15  # the summary is read in seconds: the rest is in the bundle's timeline


def summary_deadline(
    rt: Runtime, incident_id: str, record: dict[str, Any], title: str, now: datetime
) -> list[Deadline]:
    """Return the desk-summary deadline, due now, of a resolved incident the desk was told of."""
    times = report.from_record(record, rt.incidents.history(incident_id))
    if times is None or not desk_told(times.priority, times.started, rt.policy):
        return []
    run_id = str(record.get("run_id") or "")
    return [
        Deadline(incident_id, DESK_SUMMARY, now.isoformat(), str(times.priority), run_id, title)
    ]


def register_call(
    rt: Runtime, state: RunState, entries: list[dict[str, Any]], now: datetime
) -> TradingImpact:
    """Register the desk's phone call, due now, when the evidence shows a critical impact."""
    impact = trading_impact(entries)
    priority = state.classification.priority
    if state.incident_id and desk_call_reasons(impact, priority, now, rt.policy):
        call = Deadline(
            state.incident_id, DESK_CALL, now.isoformat(), str(priority), state.run_id, state.title
        )
        rt.clock.register([call])
    return impact


def act(rt: Runtime, deadline: Deadline, now: datetime) -> str:
    """Act on a trading desk deadline: the alert, the call or the summary."""
    if deadline.kind == DESK_ALERT:
        return send_alert(rt, deadline, now)
    if deadline.kind == DESK_CALL:
        return call_desk(rt, deadline, now)
    return send_summary(rt, deadline, now)


def send_alert(rt: Runtime, deadline: Deadline, now: datetime) -> str:
    """E-mail the desk the incident's alert, once; not when it resolved before it went out."""
    record = rt.incidents.get(deadline.incident_id) or {}
    if record.get("status") == "resolved":
        return "resolved before the desk alert went out: the summary tells the desk"
    state = existing_run(rt, deadline.run_id)
    priority = deadline.priority
    triggered = datetime.fromisoformat(deadline.due)
    due = state.deadlines if state else deadlines(Priority(priority), triggered, rt.policy)
    facts = {
        "priority": priority,
        "title": deadline.title or deadline.incident_id,
        "reason": state.classification.reason if state else "see the incident",
        "incident_id": deadline.incident_id,
        "raised": triggered,
        "market": rt.voice.market(triggered),
        "acknowledge": due.acknowledge,
        "resolve": due.resolve,
        "bundle": bundle_location(rt.settings, deadline.run_id or deadline.incident_id, now),
    }
    text, html = rt.voice.email("desk_alert", **facts)
    subject = rt.voice.email_subject(DESK_ALERT, priority=priority, title=facts["title"])
    mail = Mail(
        DESK_ALERT,
        deadline.run_id or deadline.incident_id,
        recipients(DESK_ALERT, priority, rt.policy),
        subject,
        text,
        html,
        priority,
        deadline.incident_id,
    )
    return send_once(rt, mail, now)


def send_summary(rt: Runtime, deadline: Deadline, now: datetime) -> str:
    """E-mail the desk the resolved incident's summary, once, threaded under its alert."""
    record = rt.incidents.get(deadline.incident_id) or {}
    times = report.from_record(record, rt.incidents.history(deadline.incident_id))
    if times is None:
        return "no clock of ours for this incident"
    state = existing_run(rt, deadline.run_id)
    run_key_id = deadline.run_id or deadline.incident_id
    timeline = [
        {"at": datetime.fromisoformat(e["at"]), "what": e.get("what", ""), "by": e.get("by", "")}
        for e in rt.incidents.history(deadline.incident_id)
    ]
    facts = {
        "priority": deadline.priority,
        "title": deadline.title or str(record.get("title") or deadline.incident_id),
        "reason": state.classification.reason if state else "see the incident",
        "incident_id": deadline.incident_id,
        "impact": run_impact(rt, deadline.run_id).describe(),
        "closing": rt.voice.closing(times),
        "moments": rt.voice.desk_moments(times),
        "timeline": timeline[:TIMELINE_LINES],
        "more": max(len(timeline) - TIMELINE_LINES, 0),
        "bundle": bundle_location(rt.settings, run_key_id, now),
    }
    text, html = rt.voice.email("desk_summary", **facts)
    subject = rt.voice.email_subject(DESK_SUMMARY, priority=deadline.priority, title=facts["title"])
    mail = Mail(
        DESK_SUMMARY,
        run_key_id,
        recipients(DESK_SUMMARY, deadline.priority, rt.policy),
        subject,
        text,
        html,
        deadline.priority,
        deadline.incident_id,
        thread=run_key_id,
        thread_kind=DESK_ALERT,
    )
    return send_once(rt, mail, now)


def run_impact(rt: Runtime, run_id: str) -> TradingImpact:
    """Return the trading impact the run's evidence showed (none checked: nothing known)."""
    kept = runs.entries(rt.redis, run_id) if run_id else None
    return trading_impact(kept) if kept else TradingImpact()


def call_desk(rt: Runtime, deadline: Deadline, now: datetime) -> str:
    """Call the trading desk in with a PagerDuty responder request, once per incident.

    PagerDuty refusing it for good (402 without coordinated responding, 404) leaves a note
    asking for the call by hand; a transient failure is raised, to be retried.
    """
    call = rt.policy.communication.trading_desk.call
    impact = run_impact(rt, deadline.run_id)
    if call is None or not impact.reasons():
        return "no call: nothing to call about"
    record = rt.incidents.get(deadline.incident_id) or {}
    incident = IncidentRef(deadline.incident_id, str(record.get("incident_key") or ""))
    if not call.targets:
        # Nobody for PagerDuty to call: the note's first line asks a person to, with the number.
        note = rt.voice.desk_call(deadline.priority, "phone", impact.describe(), called=call.phone)
        if not rt.deliveries.effect_done(deadline.incident_id, DESK_CALL_EFFECT):
            rt.deliveries.mark_effect(deadline.incident_id, DESK_CALL_EFFECT, "asked by note")
            rt.incidents.log(deadline.incident_id, note.splitlines()[0], "responder")
        post_note_once(rt, incident, deadline.run_id or deadline.incident_id, DESK_CALL, note)
        return note.splitlines()[0]
    called = describe_targets(call.targets)
    values = {
        "priority": deadline.priority,
        "title": deadline.title or deadline.incident_id,
        "impact": impact.describe(),
    }
    request = ResponderRequest(
        call.requester_id, call.targets, lines.policy_message(call.message, **values)
    )
    timeline = lines.timeline("desk_called", called=called)
    asked = request_responders_once(
        rt, incident, DESK_CALL_EFFECT, request, timeline, detail=called
    )
    if asked.how == "already":
        return "the trading desk was called already"
    if asked.how == "refused":
        note = rt.voice.desk_call(deadline.priority, "failed", impact.describe(), why=asked.why)
    else:
        note = rt.voice.desk_call(deadline.priority, "requested", impact.describe(), called=called)
    post_note_once(rt, incident, deadline.run_id or deadline.incident_id, DESK_CALL, note)
    return note.splitlines()[0]
