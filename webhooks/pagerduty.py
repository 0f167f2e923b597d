"""POST /webhooks/pagerduty: PagerDuty Webhooks v3, signed with X-PagerDuty-Signature."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from redis import RedisError

from tasks.actions import approval
from tasks.lanes import actions_queue, queue_for
from tasks.names import ANSWER_NOTE, CLOSE_INCIDENT, RESPOND
from tasks.notes import markers
from tasks.sla import incident_events
from tasks.slack_queue import tell_slack
from tasks.store.deliveries import Claim, new_delivery_id
from triage import note_commands
from triage.classify import classify
from triage.event_age import age_problem
from triage.models import (
    STARTS_RESPONSE,
    UPDATES_INCIDENT,
    Classification,
    IncidentEvent,
    parse_pagerduty,
)
from webhooks.auth import pagerduty_signature_problem, pagerduty_signatures
from webhooks.errors import problem
from webhooks.intake import (
    kept_headers,
    parse_or_400,
    read_body_or_problem,
    record_or_503,
    require_json,
)
from webhooks.receiver import current_receiver

log = logging.getLogger(__name__)
blueprint = Blueprint("pagerduty", __name__)

SOURCE = "pagerduty"
KEPT_HEADERS = ("User-Agent", "Content-Type", "X-Webhook-Id", "X-Webhook-Subscription")
NOTE_ADDED = "not started: a note was added"
PING = "pagey.ping"  # PagerDuty's test event (it may carry no occurred_at)
SLACK_STATUS_EVENTS = frozenset(
    {
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.resolved",
        "incident.reopened",
    }
)


@blueprint.post("/webhooks/pagerduty")
def receive_pagerduty() -> Response | tuple[Response, int]:
    """Verify, record and act on one PagerDuty v3 webhook event."""
    receiver = current_receiver()
    metrics = receiver.metrics
    if rejection := require_json(request.content_type):
        return metrics.rejected(SOURCE, "content_type", rejection)
    secrets = receiver.settings.pagerduty_webhook_secrets
    if not secrets:
        # A configuration gap, not the sender's fault: 503 keeps PagerDuty retrying (48 h).
        return metrics.rejected(
            SOURCE,
            "unconfigured",
            problem(
                503,
                "no PagerDuty webhook secret is configured "
                "(RESPONDER_PAGERDUTY_WEBHOOK_SECRETS); retry later",
            ),  # fmt: skip
        )
    # Whatever needs no body is checked before reading one: a client without a usable
    # signature never gets to hold the receiver while it sends its body slowly.
    if isinstance(why := pagerduty_signatures(request.headers.get("X-PagerDuty-Signature")), str):
        return metrics.rejected(SOURCE, "invalid", problem(400, why, "X-PagerDuty-Signature"))
    # Not request.get_data(): it returns a chunked body cut at the limit, not a 413.
    raw = read_body_or_problem(
        receiver, SOURCE, request.environ, current_app.config["MAX_CONTENT_LENGTH"]
    )
    if isinstance(raw, Response):
        return raw
    signature = pagerduty_signature_problem(
        raw, request.headers.get("X-PagerDuty-Signature"), [s.reveal() for s in secrets]
    )
    if signature is not None:
        status, message = signature
        reason = "bad_signature" if status == 403 else "invalid"
        return metrics.rejected(SOURCE, reason, problem(status, message, "X-PagerDuty-Signature"))
    event = parse_or_400(receiver, SOURCE, raw, parse_pagerduty)
    if isinstance(event, Response):
        return event

    now = datetime.now(UTC)
    settings = receiver.settings
    too_old = age_problem(
        event.occurred_at,
        now,
        timedelta(seconds=settings.pagerduty_event_max_age_seconds),
        timedelta(seconds=settings.pagerduty_event_max_skew_seconds),
    )
    if too_old is not None and event.event_type != PING:  # a ping acts on nothing
        return refuse_by_age(receiver, event, raw, too_old, now)
    incident = event.incident
    classification = (
        classify(incident, receiver.runtime.policy, now)
        if incident is not None and event.starts_response
        else None
    )
    claim = Claim.NONE
    if event.event_type in STARTS_RESPONSE:  # a reopen takes over from a run of the incident
        claim = Claim.FORCE if STARTS_RESPONSE[event.event_type] else Claim.PAGERDUTY
    starts = classification is not None
    delivery_id = new_delivery_id(now)
    messages = []
    if starts:  # P0/P1 on the urgent lane
        queue = queue_for(receiver.settings.queue, _priority(classification))
        messages.append(receiver.messages.build(RESPOND, [delivery_id, 1], "start", None, queue))
    if incident is not None and incident_events.closes(event):
        # The task applies the event too: it never waits for us. A P0/P1 incident's closing
        # note rides the urgent lane, by how the incident classifies.
        queue = incident_events.closing_queue(
            receiver.settings.queue, incident, receiver.runtime.policy, now
        )
        messages.append(receiver.messages.build(CLOSE_INCIDENT, [delivery_id], "-", None, queue))
    idle_reason = _idle_reason(event)
    person_note = idle_reason == NOTE_ADDED  # a note of ours coming back is never acted on
    commands = note_commands.parse(event.note_content) if person_note else []
    if commands:
        idle_reason = incident_events.describe_commands(commands)
    if incident_events.malformed(commands):  # answered with a note, by a task
        messages.append(
            receiver.messages.build(ANSWER_NOTE, [delivery_id], "-", None, receiver.settings.queue)
        )
    recorded = record_or_503(
        receiver,
        delivery_id=delivery_id,
        source=SOURCE,
        raw_body=raw,
        headers=kept_headers(request.headers, KEPT_HEADERS),
        # The signed event id, never the X-Webhook-Id header: the signature does not cover
        # headers, so a captured body with a new header id would be new each time.
        dedup_keys=[(event.id, "start" if starts else "-")],
        fields={
            "event_id": event.id,
            "event_type": event.event_type,
            "incident_id": incident.id if incident else event.note_incident_id,
            "incident_key": incident.incident_key if incident else "",
            "classification": classification.to_dict() if classification else None,
        },
        now=now,
        claim=claim,
        incident=(incident.incident_key or f"id:{incident.id}") if incident and starts else "",
        idle_reason=idle_reason,
        messages=messages,
        priority=_priority(classification) or "P3",
    )
    if isinstance(recorded, Response):
        return recorded
    if not recorded.duplicate:
        try:
            newest = incident_events.apply_event(receiver.runtime, event, person_note=person_note)
            if newest and incident is not None and event.event_type in SLACK_STATUS_EVENTS:
                # The Slack thread's parent says acknowledged (by whom) or resolved.
                tell_slack(receiver.runtime, {"what": "status", "incident_id": incident.id})
        except Exception:  # the delivery is stored; `responder replay` can apply it again
            log.exception("cannot update the incident from %s", recorded.delivery_id)
        approve_by_note(receiver, event, commands)
    priorities = [classification.priority.value] if classification and recorded.started else []
    metrics.accepted(SOURCE, recorded, priorities)
    return jsonify(
        delivery_id=recorded.delivery_id,
        priority=_priority(classification),
        duplicate=recorded.duplicate,
    ), 202


def refuse_by_age(
    receiver: Any, event: IncidentEvent, raw: bytes, why: str, now: datetime
) -> Response | tuple[Response, int]:
    """Record a signed event too old (or too far ahead) to act on; answer 200 saying why.

    A 2xx, not a 4xx: PagerDuty drops a 4xx without retrying but disables the subscription
    after three in a row, so the backlog it delivers late after an outage of ours would turn
    the responder deaf for 24 h; a 5xx would be retried for 48 h and stay stale. The event is
    stored, so an operator sees it in `responder deliveries`; nothing runs, no note command
    is taken, the incident record is left as it is. A repeat of its event id is the usual
    duplicate.
    """
    recorded = record_or_503(
        receiver,
        delivery_id=new_delivery_id(now),
        source=SOURCE,
        raw_body=raw,
        headers=kept_headers(request.headers, KEPT_HEADERS),
        dedup_keys=[(event.id, "-")],
        fields={
            "event_id": event.id,
            "event_type": event.event_type,
            "incident_id": event.incident.id if event.incident else event.note_incident_id,
            "refused": why,
        },
        now=now,
        idle_reason=f"refused: {why}",
    )
    if isinstance(recorded, Response):
        return recorded
    if recorded.duplicate:
        receiver.metrics.accepted(SOURCE, recorded, [])
        answer = {"delivery_id": recorded.delivery_id, "priority": None, "duplicate": True}
        return jsonify(answer), 202
    log.warning("PagerDuty event %s refused: %s", event.id, why)
    refused = problem(200, why, "event.occurred_at", delivery_id=recorded.delivery_id)
    return receiver.metrics.rejected(SOURCE, "stale", refused)


def approve_by_note(receiver: Any, event: IncidentEvent, commands: list[Any]) -> None:
    """Take each `/approve <id>` and `/run <action> [<target>]` of a person's note down the one
    approval path, once.

    The author is the event's agent (HMAC-verified with the rest of the event); a repeat of
    the webhook is a duplicate and comes nowhere near here.
    """
    wanted = [c for c in commands if isinstance(c, note_commands.Approve | note_commands.RunAction)]
    if not wanted:
        return
    agent = event.agent or {}
    approver = str(agent.get("id") or agent.get("summary") or "")
    queue = actions_queue(receiver.settings.queue)

    def send(name: str, args: list[Any]) -> None:
        receiver.messages.app.send_task(name, args=args, queue=queue)

    for command in wanted:
        try:
            if isinstance(command, note_commands.Approve):
                # Only a proposal of the note's own incident: a pasted id of another one
                # approves nothing.
                outcome = approval.approve(
                    receiver.runtime,
                    command.proposal_id,
                    approver,
                    "note",
                    send,
                    incident_id=event.note_incident_id or "",
                )
            elif event.note_incident_id:
                outcome = approval.run_by_note(
                    receiver.runtime,
                    command.action,
                    command.target or None,
                    event.note_incident_id,
                    approver,
                    send,
                )
            else:
                continue  # a note always has its incident; nothing to act for otherwise
            log.info("note command %s by %s: %s", command, approver, outcome)
        except Exception:  # the note is stored; the person can approve again
            log.exception("cannot take the note command %s", command)


def _priority(classification: Classification | None) -> str | None:
    return classification.priority.value if classification else None


def _idle_reason(event: IncidentEvent) -> str:
    """Say why an event that starts nothing was only recorded."""
    if event.event_type == PING:
        return "not started: ping"
    if event.event_type == "incident.annotated":
        # The marker catches our note when its webhook beats us remembering its id; a copy
        # PagerDuty trimmed has lost the marker, and is known by its opening instead.
        own = markers.is_ours(event.note_content)
        opening = markers.opening(event.note_content) if event.note_trimmed else None
        authors: set[str] = set()
        try:
            deliveries = current_receiver().runtime.deliveries
            own = own or deliveries.is_own_note(event.note_id)
            own = own or (opening is not None and deliveries.is_own_note(opening))
            authors = deliveries.own_authors()
        except RedisError:
            pass  # recording fails next and answers 503
        if own:
            return "ignored: our own note"
        # Commands count only in a note a person wrote: not in a copy of ours, cut or not.
        author = str((event.agent or {}).get("id") or "")
        refused = note_commands.refusal(event.note_content, author, authors)
        return f"ignored: not a person's note: {refused}" if refused else NOTE_ADDED
    if event.event_type in UPDATES_INCIDENT:
        return f"not started: incident record updated ({event.event_type})"
    if event.event_type in STARTS_RESPONSE:
        return "not started: the event carries no incident"
    return f"ignored: unknown event type {event.event_type!r}"
