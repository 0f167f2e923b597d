"""What the SLA clock does when a deadline passes: escalate, remind, post status updates."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from tasks.pagerduty.client import IncidentRef, PagerDutyUnavailable
from tasks.retries import decide
from tasks.run.response import post_note_once
from tasks.runtime import Runtime
from tasks.store.deliveries import PREFIX
from tasks.store.incidents import escalations_key
from tasks.store.sla_clock import Deadline
from triage.models import Priority
from triage.policy import format_duration

log = logging.getLogger(__name__)


def act(rt: Runtime, deadline: Deadline, now: datetime) -> str:
    """Act on a deadline that has passed; return what was done (for the task's result)."""
    record = rt.incidents.get(deadline.incident_id) or {}
    status = record.get("status", "triggered")
    if status == "resolved":
        return "resolved: nothing to do"
    incident = IncidentRef(deadline.incident_id, record.get("incident_key", ""))
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
        return status_update(rt, incident, deadline, status, now)
    else:
        note = notify_management(rt, incident, deadline)
    post_note_once(rt, incident, deadline.run_id or deadline.incident_id, step, note)
    return note.splitlines()[0]


BY_HAND = {
    "acknowledge": "escalate it by hand",
    "resolve": "escalate it by hand",
    "next_update": "post the status update by hand",
    "notify_management": "call management in by hand",
    "respond": "check on the responder",
}


@contextmanager
def acting_alone(rt: Runtime, deadline: Deadline, owner: str, seconds: int) -> Iterator[bool]:
    """Hold a lock on one deadline while acting; yield False when another task holds it.

    The once-markers are checked before each effect; the lock keeps two copies of the action
    (a claim taken back while its first copy still runs) from passing those checks together.
    The same task redelivered after its worker died (`owner` is the task id) takes it again.
    """
    key = f"{PREFIX}sla-acting:{deadline.member}:{deadline.due}"
    taken = rt.redis.set(key, owner, nx=True, ex=seconds)
    if not taken and rt.redis.get(key) != owner.encode():
        yield False
        return
    try:
        yield True
    finally:
        rt.redis.delete(key)


def gave_up(rt: Runtime, deadline: Deadline, why: str) -> None:
    """Say on the incident that an SLA action failed for good, and what to do by hand."""
    incident = IncidentRef(deadline.incident_id, "")
    by_hand = BY_HAND.get(deadline.kind, "act by hand")
    note = rt.voice.sla_gave_up(deadline.priority, deadline.kind, why, by_hand)
    step = f"{deadline.kind}@{deadline.due}:gave-up"
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


def notify_management(rt: Runtime, incident: IncidentRef, deadline: Deadline) -> str:
    """Call management in with a responder request when the policy names them; return the note.

    PagerDuty refusing the request for good (402 without coordinated responding, 404) leaves a
    note asking for it by hand; a transient failure is raised, to be retried.
    """
    priority = Priority(deadline.priority)
    management = rt.policy.pagerduty.management
    if management is None or priority not in management.request_for:
        return rt.voice.management(str(priority), "by hand")
    effect = f"{deadline.kind}@{deadline.due}:responder-request"
    message = management.message
    for name, value in (("priority", str(priority)), ("title", deadline.title or str(incident.id))):
        message = message.replace("{" + name + "}", value)
    called = ", ".join(
        f"{target_id} ({kind.removesuffix('_reference').replace('_', ' ')})"
        for target_id, kind in management.targets
    )
    if not rt.deliveries.effect_done(deadline.incident_id, effect):
        try:
            rt.pagerduty.request_responders(
                incident, management.requester_id, management.targets, message
            )
        except PagerDutyUnavailable as exc:
            if decide(exc.status, exc.headers, 1).retry:
                raise
            return rt.voice.management(str(priority), "failed", why=str(exc))
        rt.deliveries.mark_effect(deadline.incident_id, effect)
        if incident.id:
            rt.incidents.log(incident.id, f"responders requested from {called}", "responder")
    return rt.voice.management(str(priority), "requested", called=called)


def escalate(rt: Runtime, incident: IncidentRef, step: str) -> int:
    """Escalate one level further than the responder has before; once per deadline."""
    key = escalations_key(str(incident.id))
    effect = f"{step}:escalate"
    done = rt.deliveries.effect_state(str(incident.id), effect) or ""
    if done.startswith("done:"):
        return int(done.removeprefix("done:"))
    escalated = int(rt.redis.get(key) or 0)
    level = escalated + 2  # level 1 is where PagerDuty starts
    rt.pagerduty.escalate(incident, level)
    if incident.id:
        rt.incidents.log(incident.id, f"escalated to level {level}", "responder")
    # Counted only once PagerDuty took it, so a failed attempt does not skip a level.
    rt.redis.set(key, escalated + 1, ex=7 * 86400)
    rt.deliveries.mark_effect(str(incident.id), effect, str(level))
    return level


def status_update(
    rt: Runtime, incident: IncidentRef, deadline: Deadline, status: str, now: datetime
) -> str:
    """Post the runbook's status update and register the next one on the cadence."""
    cadence = rt.policy.sla[Priority(deadline.priority)].update_every.duration
    if cadence <= timedelta(0):  # the policy check refuses this; never loop on it
        raise ValueError(f"{deadline.priority} update_every is not a positive duration")
    # On the cadence from the due time, so a late or repeated action does not drift it; updates
    # missed while everything was down are not caught up one after another.
    next_at = datetime.fromisoformat(deadline.due) + cadence
    while next_at <= now:
        next_at += cadence
    message = rt.voice.status_update(
        incident=deadline.incident_id,
        status="Investigating" if status == "triggered" else "Identified",
        impact=deadline.title or "see the incident's evidence note",
        actions="automated diagnostics attached; on-call engineer engaged"
        if status == "acknowledged"
        else "automated diagnostics attached; waiting for acknowledgement",
        next_update=next_at,
    )
    effect = f"{deadline.kind}@{deadline.due}:status-update"
    if not rt.deliveries.effect_done(deadline.incident_id, effect):
        rt.pagerduty.status_update(incident, message)
        rt.incidents.log(deadline.incident_id, "status update posted", "responder")
        rt.deliveries.mark_effect(deadline.incident_id, effect)
    rt.clock.register([replace(deadline, due=next_at.isoformat())])
    return f"status update posted; next at {next_at:%H:%M} UTC"
