"""A person's note command written wrongly gets a note saying what was expected, once."""

from __future__ import annotations

from tasks.gateways.pagerduty import IncidentRef
from tasks.pagerduty.notes import post_note_once
from tasks.runtime import Runtime
from tasks.sla import incident_events
from triage import note_commands
from triage.models import parse_pagerduty


def answer_malformed(rt: Runtime, delivery_id: str) -> str:
    """Answer the malformed commands of the note a delivery brought, on its incident."""
    delivery = rt.deliveries.load(delivery_id)
    if delivery is None:
        return "delivery gone"
    event = parse_pagerduty(delivery.payload())
    wrong = incident_events.malformed(note_commands.parse(event.note_content))
    if not wrong or not event.note_incident_id:
        return "nothing to answer"
    content = rt.voice.command_answer(wrong, event.agent_name)
    incident = IncidentRef(event.note_incident_id, "")
    note_id = post_note_once(rt, incident, delivery_id, "command_answer", content)
    return note_id or "already answered"
