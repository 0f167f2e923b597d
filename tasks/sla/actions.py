"""What the SLA clock does when a deadline passes: escalate, remind, post status updates, tell
management (or summarise the business day for it), set PagerDuty's urgency."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from tasks.gateways.pagerduty import IncidentRef, PagerDutyUnavailable
from tasks.notes import lines
from tasks.notify import desk, management
from tasks.pagerduty.notes import post_note_once
from tasks.pagerduty.responders import (
    ResponderRequest,
    describe_targets,
    request_responders_once,
)
from tasks.run.state import RunState
from tasks.runtime import Runtime
from tasks.sla import after_hours, rejudge, status_updates, stop_again, summary
from tasks.store.sla_clock import REJUDGE, STOP_AGAIN, SUMMARY, Deadline
from triage import report
from triage.models import Priority
from triage.policy import format_duration

log = logging.getLogger(__name__)


def act(rt: Runtime, deadline: Deadline, now: datetime) -> str:
    """Act on a deadline that has passed; return what was done (for the task's result)."""
    if deadline.kind == SUMMARY:  # a business day's incidents, not one incident's deadline
        return summary.post_summary(rt, deadline, now)
    if deadline.kind in desk.KINDS:  # the trading desk: its e-mails and its phone call
        return desk.act(rt, deadline, now)
    record = rt.incidents.get(deadline.incident_id) or {}
    status = record.get("status", "triggered")
    incident = IncidentRef(deadline.incident_id, record.get("incident_key", ""))
    if status == "resolved" and deadline.kind == "notify_management":
        return management_after_resolution(rt, incident, deadline, record, now)
    if status == "resolved":
        return "resolved: nothing to do"
    due = datetime.fromisoformat(deadline.due)
    overdue = max(now - due, timedelta(0))
    late = format_duration(overdue) if overdue >= timedelta(minutes=1) else "0m"
    step = f"{deadline.kind}@{deadline.due}"
    if deadline.kind == "acknowledge" and status == "acknowledged":
        return "acknowledged in time"
    if deadline.kind in ("acknowledge", "resolve"):
        level = escalate(rt, incident, step)
        note = rt.voice.sla_missed(deadline.priority, deadline.kind, due, late, level)
    elif deadline.kind == "respond":
        note = rt.voice.sla_respond(deadline.priority, due, late, status)
    elif deadline.kind == "next_update":
        return status_updates.post_on_cadence(rt, incident, deadline, now)
    elif deadline.kind == "lower_urgency":
        return after_hours.lower_urgency(rt, incident, deadline, record, now)
    elif deadline.kind == "restore_urgency":
        return after_hours.restore_urgency(rt, incident, deadline)
    elif deadline.kind == REJUDGE:  # the market opened or closed: classified again
        return rejudge.act(rt, deadline, record, now)
    elif deadline.kind == STOP_AGAIN:  # trading was stopped: has it resumed?
        return stop_again.check(rt, deadline, record, now)
    else:
        # E-mail first, PagerDuty after; neither waits for the other's failure.
        notice = management.notification(rt, deadline, now)
        with management.told_first(rt, notice, now) as emailed:
            note = notify_management(rt, incident, deadline, emailed)
            if cto := call_cto(rt, incident, deadline):
                note += "\n" + cto
            post_note_once(rt, incident, deadline.run_id or deadline.incident_id, step, note)
        return note.splitlines()[0]
    post_note_once(rt, incident, deadline.run_id or deadline.incident_id, step, note)
    return note.splitlines()[0]


BY_HAND = {
    "acknowledge": "escalate it by hand",
    "resolve": "escalate it by hand",
    "next_update": "post the status update by hand",
    "notify_management": "call management in by hand",
    "respond": "check on the responder",
    "lower_urgency": "set its urgency to low by hand",
    "restore_urgency": "set its urgency to high by hand",
    REJUDGE: "judge its priority again by hand (the market opened or closed)",
    STOP_AGAIN: "check by hand whether trading resumed while the cause still fires",
    "desk_alert": "e-mail the trading desk by hand",
    "desk_call": "phone the trading desk by hand",
    "desk_summary": "e-mail the trading desk the summary by hand",
}
EMAIL_BY_HAND = {
    "notify_management": "e-mail engineering management by hand",
    SUMMARY: "e-mail engineering management the summary by hand",
}


@contextmanager
def acting_alone(rt: Runtime, deadline: Deadline, owner: str, seconds: int) -> Iterator[bool]:
    """Hold a lock on one deadline while acting; yield False when another task holds it.

    The once-markers are checked before each effect; the lock keeps two copies of the action
    (a claim taken back while its first copy still runs) from passing those checks together.
    The same task redelivered after its worker died (`owner` is the task id) takes it again.
    """
    if not rt.clock.hold_acting(deadline, owner, seconds):
        yield False
        return
    try:
        yield True
    finally:
        rt.clock.release_acting(deadline)


def act_early(
    rt: Runtime, state: RunState, kind: str, owner: str, seconds: int, now: datetime
) -> str:
    """Act at once on a run's deadline `kind` that is due by `now`, instead of at beat's tick.

    With the first note: a held incident's low urgency and the first status update ("Initial:
    Within 15 minutes of incident start"). The deadline's lock and its effect's once-marker
    keep this and the clock's own action from both carrying it out; a failure here is taken up
    by the clock. A deadline not due yet (held for business hours) waits for it.
    """
    due = state.deadlines.to_dict().get(kind)
    if not state.incident_id or due is None:
        return f"no {kind} for this run"
    if datetime.fromisoformat(due) > now:
        return f"{kind} at {due}"
    priority = state.classification.priority.value
    deadline = Deadline(state.incident_id, kind, due, priority, state.run_id, state.title)
    with acting_alone(rt, deadline, owner, seconds) as alone:
        return act(rt, deadline, now) if alone else "the SLA clock is acting on it"


def gave_up(rt: Runtime, deadline: Deadline, why: str, email: bool = False) -> None:
    """Say on the incident that an SLA action (or its e-mail) failed for good, and what to do
    by hand."""
    if deadline.kind == SUMMARY:  # no one incident to say it on: the notes it did post stand
        log.error("the management summary %s failed: %s", deadline.incident_id, why)
        return
    incident = IncidentRef(deadline.incident_id, "")
    by_hand = BY_HAND.get(deadline.kind, "act by hand")
    if email:
        by_hand = EMAIL_BY_HAND.get(deadline.kind, by_hand)
    note = rt.voice.sla_gave_up(deadline.priority, deadline.kind, why, by_hand)
    step = f"{deadline.kind}@{deadline.due}:{'email-' if email else ''}gave-up"
    try:
        post_note_once(rt, incident, deadline.run_id or deadline.incident_id, step, note)
    except PagerDutyUnavailable as exc:
        log.error(
            "SLA %s for %s failed (%s); the note saying so failed too: %s",
            deadline.kind,
            deadline.incident_id,
            why,
            exc,
        )


def management_after_resolution(
    rt: Runtime, incident: IncidentRef, deadline: Deadline, record: dict[str, Any], now: datetime
) -> str:
    """Tell management of an incident resolved before its notification fell due, once.

    "P1 incidents: Within 30 minutes" holds for one resolved in 20: management hears a
    resolution summary then, instead of nothing; no one is called in for a resolved incident.
    """
    times = report.from_record(record, rt.incidents.history(deadline.incident_id))
    step = f"{deadline.kind}@{deadline.due}"  # the same step as when it is open: one of the two
    notice = management.notification(rt, deadline, now, times)
    with management.told_first(rt, notice, now) as emailed:
        # Said after the e-mail: a summary already e-mailed is not handed to a person to pass on.
        note = rt.voice.management_resolved(deadline.priority, times, ", ".join(emailed))
        post_note_once(rt, incident, deadline.run_id or deadline.incident_id, step, note)
    return note.splitlines()[0]


def notify_management(
    rt: Runtime, incident: IncidentRef, deadline: Deadline, emailed: tuple[str, ...] = ()
) -> str:
    """Call management in with a responder request when the policy names them; return the note.

    Without a request, the note asks a person to tell management only when it was not
    e-mailed (`emailed`: the addresses it went to).

    PagerDuty refusing the request for good (402 without coordinated responding, 404) leaves a
    note asking for it by hand; a transient failure is raised, to be retried.
    """
    priority = Priority(deadline.priority)
    management = rt.policy.pagerduty.management
    if management is None or priority not in management.request_for:
        return rt.voice.management(str(priority), "by hand", emailed=", ".join(emailed))
    effect = f"{deadline.kind}@{deadline.due}:responder-request"
    values = {"priority": str(priority), "title": deadline.title or str(incident.id)}
    message = lines.policy_message(management.message, **values)
    called = describe_targets(management.targets)
    request = ResponderRequest(management.requester_id, management.targets, message)
    asked = request_responders_once(
        rt, incident, effect, request, lines.timeline("responders_requested", called=called)
    )
    if asked.how == "refused":
        return rt.voice.management(str(priority), "failed", why=asked.why)
    return rt.voice.management(str(priority), "requested", called=called)


def call_cto(rt: Runtime, incident: IncidentRef, deadline: Deadline) -> str:
    """Call the CTO in (a responder request, once) for the priorities the policy's contact
    names; return the note's line saying so ("" when the CTO is not called by PagerDuty)."""
    cto = rt.policy.communication.cto
    priority = Priority(deadline.priority.split("/")[0])
    if cto is None or cto.request is None or priority not in cto.priorities:
        return ""
    request = cto.request
    called = describe_targets(request.targets)
    effect = f"{deadline.kind}@{deadline.due}:cto-request"
    values = {"priority": str(priority), "title": deadline.title or str(incident.id)}
    message = lines.policy_message(request.message, **values)
    asked = request_responders_once(
        rt,
        incident,
        effect,
        ResponderRequest(request.requester_id, request.targets, message),
        lines.timeline("cto_called", called=called),
    )
    if asked.how == "refused":
        return rt.voice.cto_call("failed", why=asked.why)
    return rt.voice.cto_call("requested", called=called)


def escalate(rt: Runtime, incident: IncidentRef, step: str) -> int:
    """Escalate one level further than the responder has before; once per deadline."""
    effect = f"{step}:escalate"
    done = rt.deliveries.effect_state(str(incident.id), effect) or ""
    if done.startswith("done:"):
        return int(done.removeprefix("done:"))
    escalated = rt.incidents.escalations(str(incident.id))
    level = escalated + 2  # level 1 is where PagerDuty starts
    rt.pagerduty.escalate(incident, level)
    if incident.id:
        rt.incidents.log(incident.id, lines.timeline("escalated", level=level), "responder")
    # Counted only once PagerDuty took it, so a failed attempt does not skip a level.
    rt.incidents.count_escalation(str(incident.id), escalated + 1)
    rt.deliveries.mark_effect(str(incident.id), effect, str(level))
    return level
