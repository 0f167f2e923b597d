"""`POST /actions/<action>`: approval from a PagerDuty incident workflow's "Send a Webhook
POST" step, with the incident id, the target and the person who ran the workflow.

Thin: authenticate, parse, hand to the one approval path, answer. The action runs in the
worker; this process only sends its task by name.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from redis import RedisError
from werkzeug.exceptions import RequestEntityTooLarge

from tasks.actions.approval import run
from tasks.lanes import actions_queue
from tasks.store.deliveries import DEDUP_TTL
from tasks.store.seen_requests import first_delivery, forget_delivery
from triage import strict_json
from triage.models import PayloadError
from webhooks.errors import problem
from webhooks.intake import read_body, require_json
from webhooks.receiver import current_receiver

blueprint = Blueprint("actions", __name__)
log = logging.getLogger(__name__)

_INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")
# A workflow run's request_id is remembered as long as PagerDuty retries a delivery.
REPLAY_SECONDS = int(DEDUP_TTL.total_seconds())
# What each answer of the approval path is, as an HTTP status.
STATUS = {
    "approved": 202,
    "partly": 202,
    "checking": 202,
    "already": 409,
    "refused": 403,
    "unknown": 404,
}


@blueprint.post("/actions/<action>")
def approve_by_workflow(action: str) -> Response | tuple[Response, int]:
    """Propose and approve `action` on the incident the workflow names; 202 when queued."""
    receiver = current_receiver()
    settings = receiver.settings
    if not settings.actions_token:
        return problem(503, "actions are not enabled here: RESPONDER_ACTIONS_TOKEN is not set")
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(
            401, "missing bearer token (the workflow's Web API connection)", "Authorization"
        )
    if not hmac.compare_digest(token.strip().encode(), settings.actions_token.reveal().encode()):
        return problem(401, "wrong bearer token", "Authorization")
    if rejection := require_json(request.content_type):
        return rejection
    try:
        body = strict_json.loads(
            read_body(request.environ, current_app.config["MAX_CONTENT_LENGTH"])
        )
    except RequestEntityTooLarge:
        return problem(413, "request body too large", "(body)")
    except PayloadError as exc:
        return problem(400, exc.problem, exc.field)
    if not isinstance(body, dict):
        return problem(400, "expected a JSON object", "(body)")
    fields, error = _fields(body)
    if error is not None:
        return error
    rt = receiver.runtime
    try:
        # Only an incident the responder has seen (a webhook, an alert's run): an id typed or
        # guessed into the workflow's body stops nothing.
        known = rt.incidents.get(fields["incident_id"]) is not None
        # The bearer token covers no part of the request: the workflow's request_id is what
        # tells a second delivery of the same run (PagerDuty's retry, a captured request sent
        # again) from a new one.
        first = known and first_delivery(rt.redis, "actions", fields["request_id"], REPLAY_SECONDS)
    except RedisError:
        return problem(503, "cannot record the approval right now; retry")
    if not known:
        why = f"unknown incident {fields['incident_id']}: the responder has no record of it"
        why += "; nothing ran"
        return problem(404, why, "incident_id")
    if not first:
        why = f"request_id {fields['request_id']!r} was received before; nothing ran"
        return problem(409, why, "request_id")
    celery = receiver.messages.app
    queue = actions_queue(settings.queue)

    def send(name: str, args: list[Any]) -> None:
        celery.send_task(name, args=args, queue=queue)

    try:
        outcome = run(
            rt,
            action,
            fields["target"] or None,
            fields["incident_id"],
            fields["approver"],
            "workflow",
            send,
        )
    except Exception as exc:
        # Redis or the broker failed mid-way: the sender retries the same request_id, which
        # must then be taken, not refused as a replay (a second run of the same action on
        # the same target within 10 minutes answers "already" and acts no more).
        try:
            forget_delivery(rt.redis, "actions", fields["request_id"])
        except RedisError:
            log.warning(
                "cannot forget request %r after %s", fields["request_id"], type(exc).__name__
            )
        if isinstance(exc, RedisError):
            return problem(503, "cannot record the approval right now; retry")
        raise
    answer = {
        "status": outcome.status,
        "message": outcome.message,
        "proposal_id": outcome.proposal_id,
    }
    return jsonify(answer), STATUS.get(outcome.status, 400)


def _fields(body: dict[str, Any]) -> tuple[dict[str, str], Response | None]:
    """Return the body's incident_id, approver and target, or a 400 naming the field."""
    found: dict[str, str] = {}
    fields = (("incident_id", True), ("approver", True), ("target", False), ("request_id", True))
    for name, required in fields:
        value = body.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            return found, problem(400, f"{name} must be a string", name)
        if required and not value.strip():
            return found, problem(400, f"{name} is required", name)
        found[name] = value.strip()
    if not _INCIDENT_ID.fullmatch(found["incident_id"]):
        # Explicit ASCII classes: str.isalnum and \d take any script's letters and digits.
        why = "incident_id must be a PagerDuty incident id (ASCII letters and digits, at most 64)"
        return found, problem(400, why, "incident_id")
    if len(found["approver"]) > 254:
        return found, problem(400, "approver is too long", "approver")
    if len(found["request_id"]) > 200:
        return found, problem(400, "request_id is too long (at most 200 characters)", "request_id")
    return found, None
