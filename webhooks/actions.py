"""`POST /actions/<action>`: approval from a PagerDuty incident workflow's "Send a Webhook
POST" step, with the incident id, the target and the person who ran the workflow.

Thin: authenticate, parse, hand to the one approval path, answer. The action runs in the
worker; this process only sends its task by name.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request
from redis import RedisError

from tasks.actions.approval import run
from tasks.lanes import actions_queue
from webhooks.errors import problem
from webhooks.receiver import current_receiver

blueprint = Blueprint("actions", __name__)

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
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return problem(400, "expected a JSON object", "(body)")
    fields, error = _fields(body)
    if error is not None:
        return error
    celery = receiver.messages.app
    queue = actions_queue(settings.queue)

    def send(name: str, args: list[Any]) -> None:
        celery.send_task(name, args=args, queue=queue)

    try:
        outcome = run(
            receiver.runtime,
            action,
            fields["target"] or None,
            fields["incident_id"],
            fields["approver"],
            "workflow",
            send,
        )
    except RedisError:
        return problem(503, "cannot record the approval right now; retry")
    answer = {
        "status": outcome.status,
        "message": outcome.message,
        "proposal_id": outcome.proposal_id,
    }
    return jsonify(answer), STATUS.get(outcome.status, 400)


def _fields(body: dict[str, Any]) -> tuple[dict[str, str], Response | None]:
    """Return the body's incident_id, approver and target, or a 400 naming the field."""
    found: dict[str, str] = {}
    for name, required in (("incident_id", True), ("approver", True), ("target", False)):
        value = body.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            return found, problem(400, f"{name} must be a string", name)
        if required and not value.strip():
            return found, problem(400, f"{name} is required", name)
        found[name] = value.strip()
    if len(found["incident_id"]) > 64 or not found["incident_id"].isalnum():
        return found, problem(400, "incident_id must be a PagerDuty incident id", "incident_id")
    if len(found["approver"]) > 254:
        return found, problem(400, "approver is too long", "approver")
    return found, None
