"""What a PagerDuty incident event changes here: the incident record, its history, its clocks,
and what people say with note commands (`/status identified ...`, `/eta 30m`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tasks.lanes import queue_for
from tasks.notes import lines
from tasks.runtime import Runtime
from tasks.store.sla_clock import KINDS
from triage import note_commands
from triage.classify import classify
from triage.models import Incident, IncidentEvent
from triage.note_commands import (
    Approve,
    Malformed,
    Parsed,
    RunAction,
    SetEta,
    SetStatus,
    Unknown,
)
from triage.policy import Policy, format_duration

log = logging.getLogger(__name__)

# Acknowledging stops the acknowledge clock; resolving stops them all but management's: "P1
# incidents: Within 30 minutes" holds for one resolved in 20 (it hears a resolution summary).
STOPS_CLOCKS = {
    "incident.acknowledged": ("acknowledge",),
    "incident.resolved": tuple(kind for kind in KINDS if kind != "notify_management"),
}


def apply_event(rt: Runtime, event: IncidentEvent, person_note: bool = False) -> bool:
    """Apply an event to its incident record and clocks; a person's note goes in the history.

    A person's note (never one of ours: the caller says which) is read for note commands.
    Return True when the event is the newest its incident has seen.
    """
    if event.incident is not None:
        newest = rt.incidents.apply(event)
        # An older event (a retry, a replay) must not stop the clocks of a later cycle.
        if newest and (stopped := STOPS_CLOCKS.get(event.event_type)):
            rt.clock.cancel(event.incident.id, stopped)
        return newest
    if person_note and event.note_incident_id:
        what = lines.timeline("note_added")
        rt.incidents.log(event.note_incident_id, what, event.agent_name, event.occurred_at)
        apply_note_commands(rt, event)
    return False


def apply_note_commands(rt: Runtime, event: IncidentEvent) -> list[Parsed]:
    """Apply the commands of a person's note to its incident; return every one found.

    Unknown commands are logged and ignored; malformed ones are answered by a task the
    receiver queued (`tasks.sla.note_answers`).
    """
    incident, by = event.note_incident_id, event.agent_name
    at = event.occurred_at or datetime.now(UTC)
    commands = note_commands.parse(event.note_content)
    for command in commands:
        if isinstance(command, SetStatus):
            said = {"word": command.word, "text": command.text, "by": by}
            if rt.incidents.say(incident, "status", said, at):
                rt.incidents.log(incident, lines.timeline("status_said", word=command.word), by, at)
        elif isinstance(command, SetEta):
            eta = at + command.within if command.within is not None else None
            told = {"eta": eta.isoformat() if eta else None, "by": by}
            if rt.incidents.say(incident, "eta", told, at):
                what = lines.timeline("eta_said", eta=eta)
                rt.incidents.log(incident, what, by, at)
        elif isinstance(command, Approve | RunAction):
            pass  # the receiver takes it down the one approval path (webhooks/pagerduty.py)
        elif isinstance(command, Unknown):
            log.info(
                "incident %s: note command /%s is not one of ours: ignored", incident, command.name
            )
        else:
            log.info(
                "incident %s: malformed note command %r: %s",
                incident,
                command.line,
                command.problem,
            )
    return commands


def describe_commands(commands: list[Parsed]) -> str:
    """Say what a person's note commanded, for its delivery's record."""
    parts = []
    for command in commands:
        if isinstance(command, SetStatus):
            parts.append(f"status {command.word}")
        elif isinstance(command, SetEta):
            parts.append(f"eta {format_duration(command.within) if command.within else 'unknown'}")
        elif isinstance(command, Approve):
            parts.append(f"approve {command.proposal_id}")
        elif isinstance(command, RunAction):
            parts.append(f"run {' '.join(filter(None, (command.action, command.target)))!r}")
        elif isinstance(command, Malformed):
            parts.append(f"malformed {command.line!r} (answered)")
        else:
            parts.append(f"/{command.name} ignored (not ours)")
    return "not started: note commands: " + "; ".join(parts)


def malformed(commands: list[Parsed]) -> list[Malformed]:
    """Return the commands of ours that were written wrongly."""
    return [command for command in commands if isinstance(command, Malformed)]


def closes(event: IncidentEvent) -> bool:
    """Return True when the event resolves an incident (the closing task's cue)."""
    return event.event_type == "incident.resolved" and event.incident is not None


def closing_queue(queue: str, incident: Incident, policy: Policy, now: datetime) -> str:
    """Return the lane of an incident's closing task: urgent for what classifies P0/P1."""
    return queue_for(queue, classify(incident, policy, now).priority.value)
