"""A note on a PagerDuty incident, posted exactly once in effect, and echoed to Slack.

Every note the responder writes goes through `post_note_once`: the first-response and evidence
notes, status updates, escalations, actions, answers to note commands, the closing note.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.gateways.pagerduty import IncidentRef, PagerDutyUnavailable
from tasks.notes import lines, markers
from tasks.runtime import Runtime
from tasks.slack_queue import tell_slack
from tasks.store.effects import HeldWhy, once

# The first note is the thread's parent; an answer to a person's note command is for them.
NOT_FOR_SLACK = frozenset({"first_note", "command_answer"})
FOUND = "found after an interrupted attempt"  # the once-record of a note found, not posted


def post_note_once(
    rt: Runtime, incident: IncidentRef, run_id: str, step: str, content: str
) -> str | None:
    """Post a note exactly once in effect; return its id, or None when it was already posted.

    The note ends with a reference to (run, step). An attempt is claimed as pending before
    the POST (compare-and-set: of two copies of a task, one posts). Another copy's attempt
    pending for less than IN_FLIGHT_SECONDS may still be in flight: this one waits. A retry
    that finds an older or its own attempt pending (the worker died, the answer was lost)
    first looks for the reference among the incident's notes instead of posting a second one.
    """
    ref = markers.reference(run_id, step)
    body = markers.clip(rt.redact(content), markers.NOTE_LIMIT - len(ref) - 1)

    def find(since: float) -> tuple[dict[str, Any], str] | None:
        if any(ref in text for text in rt.pagerduty.note_contents(incident)):
            return {}, FOUND
        return None

    def post(done: Callable[[str], None]) -> dict[str, Any]:
        text = f"{body}\n{ref}"
        if opening := markers.opening(text):
            rt.deliveries.remember_own_note(opening)  # before the POST: its webhook may come first
        return rt.pagerduty.create_note(incident, text)

    posted = once(
        rt.deliveries,
        run_id,
        step,
        post,
        record=lambda note: str(note.get("id", "")),
        held=lambda why, wait: _held_back(step, why, wait),
        find=find,
    )
    if not posted.applied or posted.value is None:
        return None
    note = posted.value
    note_id = str(note.get("id", ""))
    rt.deliveries.remember_own_note(note_id)
    # Whoever PagerDuty says posted it (the From user, or the token's): its notes are ours.
    author = note.get("user")
    rt.deliveries.remember_own_author(
        str(author.get("id") or "") if isinstance(author, dict) else ""
    )
    if incident.id:
        what = lines.timeline("note_posted", first_line=body.splitlines()[0])
        rt.incidents.log(incident.id, what, "responder")
        if step not in NOT_FOR_SLACK:  # the same words in the incident's Slack thread
            request = {"what": "note", "incident_id": incident.id, "key": f"{run_id}/{step}"}
            tell_slack(rt, {**request, "text": body})
    return note_id


def _held_back(step: str, why: HeldWhy, wait: float) -> PagerDutyUnavailable:
    """Return the wait for another copy's attempt at `step`: held back, as for the budget."""
    return PagerDutyUnavailable(
        f"PagerDuty {step} held back: another attempt at it is in flight",
        429,
        {"ratelimit-reset": f"{wait:.3f}"},
        held_back=True,
    )
