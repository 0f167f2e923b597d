"""What a PagerDuty incident event changes here: the incident record, its history, its clocks."""

from __future__ import annotations

from datetime import datetime

from tasks.lanes import queue_for
from tasks.runtime import Runtime
from tasks.store.sla_clock import KINDS
from triage.classify import classify
from triage.models import Incident, IncidentEvent
from triage.policy import Policy

# Acknowledging stops the acknowledge clock; resolving stops them all.
STOPS_CLOCKS = {"incident.acknowledged": ("acknowledge",), "incident.resolved": KINDS}


def apply_event(rt: Runtime, event: IncidentEvent, person_note: bool = False) -> bool:
    """Apply an event to its incident record and clocks; a person's note goes in the history.

    Return True when the event is the newest its incident has seen.
    """
    if event.incident is not None:
        newest = rt.incidents.apply(event)
        # An older event (a retry, a replay) must not stop the clocks of a later cycle.
        if newest and (stopped := STOPS_CLOCKS.get(event.event_type)):
            rt.clock.cancel(event.incident.id, stopped)
        return newest
    if person_note and event.note_incident_id:
        rt.incidents.log(event.note_incident_id, "note added", event.agent_name, event.occurred_at)
    return False


def closes(event: IncidentEvent) -> bool:
    """Return True when the event resolves an incident (the closing task's cue)."""
    return event.event_type == "incident.resolved" and event.incident is not None


def closing_queue(queue: str, incident: Incident, policy: Policy, now: datetime) -> str:
    """Return the lane of an incident's closing task: urgent for what classifies P0/P1."""
    return queue_for(queue, classify(incident, policy, now).priority.value)
