"""P2 "Page during business hours", P3 "Handle during business hours": the PagerDuty urgency of
an incident raised outside them is low until the next business opening, so that PagerDuty pages
no one at night, when the responder opened it itself (a page PagerDuty sent high is never
lowered); at the opening it goes back to high when the policy says so. Both are SLA clock
deadlines (`lower_urgency` at the trigger, `restore_urgency` at the opening), with the clock's
retries and once-markers; the response acts on the first at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.runtime import Runtime
from tasks.store.sla_clock import Deadline
from triage.sla import is_business_hours

TRIGGER_EFFECT = "trigger"  # tasks.run.first_response.trigger_incident's once-marker, per run


def lower_urgency(
    rt: Runtime, incident: IncidentRef, deadline: Deadline, record: Mapping[str, Any], now: datetime
) -> str:
    """Set a held incident's urgency to low until the business opening, once.

    Only an incident the responder opened itself (trigger mode): one that PagerDuty or
    Alertmanager's receiver opened got its urgency from PagerDuty's service, on purpose.
    """
    if is_business_hours(now, rt.policy.market_hours):  # acted on late: the opening has come
        return "business hours have begun"
    if not opened_by_responder(rt, deadline.run_id):
        return "urgency kept: the responder did not open this incident"
    if record.get("urgency") == "low":
        return "urgency already low"
    what = lines.timeline("urgency_lowered_after_hours")
    return _set_urgency(rt, incident, deadline, "low", what)


def opened_by_responder(rt: Runtime, run_id: str) -> bool:
    """Return True when the run opened its incident itself, through the Events API."""
    return bool(run_id) and rt.deliveries.effect_done(run_id, TRIGGER_EFFECT)


def restore_urgency(rt: Runtime, incident: IncidentRef, deadline: Deadline) -> str:
    """Set the incident's urgency back to high at its business opening, once."""
    what = lines.timeline("urgency_restored_business_hours")
    return _set_urgency(rt, incident, deadline, "high", what)


def _set_urgency(
    rt: Runtime, incident: IncidentRef, deadline: Deadline, urgency: str, what: str
) -> str:
    effect = f"{deadline.kind}@{deadline.due}:urgency"
    if rt.deliveries.effect_done(deadline.incident_id, effect):
        return f"urgency set to {urgency} before"
    rt.pagerduty.set_urgency(incident, urgency)
    rt.deliveries.mark_effect(deadline.incident_id, effect)
    rt.incidents.log(deadline.incident_id, what, "responder")
    return what
