"""`POST /webhooks/slack`: Slack's interaction requests, the Approve / Deny buttons under a
proposed runbook action.

Thin: verify Slack's signature (v0 HMAC-SHA256 over the timestamp and the raw body, within
five minutes), find the clicking user among the policy's approvers, take the click down the
one approval path (`tasks.actions.approval`), answer. The action runs in the worker; the
answer to the clicker and the proposal message's new state go out by a Slack task.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, current_app, jsonify, request
from redis import RedisError
from werkzeug.exceptions import RequestEntityTooLarge

from tasks.actions import approval
from tasks.lanes import actions_queue
from tasks.slack_queue import tell_slack
from tasks.store.seen_requests import first_delivery
from triage import strict_json
from triage.models import PayloadError
from webhooks.errors import problem
from webhooks.intake import read_body
from webhooks.receiver import current_receiver

log = logging.getLogger(__name__)
blueprint = Blueprint("slack", __name__)

MAX_AGE_SECONDS = 5 * 60  # Slack's advice: refuse requests older than five minutes
# A timestamp passes MAX_AGE_SECONDS either side of our clock: ten minutes in all, and a
# minute more for the clocks' drift.
REPLAY_WINDOW_SECONDS = 2 * MAX_AGE_SECONDS + 60
APPROVE, DENY = "approve", "deny"  # the buttons' action_id (tasks/gateways/slack_blocks.py)
PROPOSAL_BLOCK = "proposal:"


def signature_problem(
    raw: bytes, timestamp: str | None, signature: str | None, secret: str, now: float
) -> str | None:
    """Return why a Slack request's signature does not hold, or None when it does."""
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    try:
        sent = int(timestamp)
    except ValueError:
        return "X-Slack-Request-Timestamp is not a number"
    if abs(now - sent) > MAX_AGE_SECONDS:
        return "stale request: X-Slack-Request-Timestamp is more than five minutes off"
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "bad signature"
    return None


def parse_click(raw: bytes) -> dict[str, str] | str:
    """Return a button click's facts (action, proposal, user, channel, ts), or what is wrong."""
    try:
        form = parse_qs(raw.decode("utf-8"), strict_parsing=True)
        field = form["payload"][0]
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        return "expected a form field payload holding JSON"
    try:
        payload = strict_json.loads(field)
    except PayloadError as exc:
        where = "" if exc.field == "(body)" else f" (at {exc.field})"
        return f"expected a form field payload holding JSON{where}: {exc.problem}"
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return "only block_actions interactions (the Approve / Deny buttons) are handled"
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return "no action in the payload"
    action = actions[0]
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    click = {
        "action": str(action.get("action_id", "")),
        "proposal_id": str(action.get("value", "")),
        "block": str(action.get("block_id", "")),
        "user": str(user.get("id", "")),
        "user_name": str(user.get("username") or user.get("name") or ""),
        "channel": str(channel.get("id", "")),
        "message_ts": str(message.get("ts", "")),
        "thread_ts": str(message.get("thread_ts", "")),
    }
    if click["action"] not in (APPROVE, DENY):
        return f"unknown action_id {click['action']!r}"
    if not click["proposal_id"] or click["block"] != PROPOSAL_BLOCK + click["proposal_id"]:
        return "the button names no proposal"
    if not click["user"]:
        return "no user in the payload"
    return click


@blueprint.post("/webhooks/slack")
def receive_slack() -> Response | tuple[Response, int]:
    """Verify one Slack interaction and take its Approve / Deny down the approval path."""
    receiver = current_receiver()
    secret = receiver.settings.slack_signing_secret
    if not secret:
        return problem(503, "Slack is not enabled here: RESPONDER_SLACK_SIGNING_SECRET is not set")
    try:
        raw = read_body(request.environ, current_app.config["MAX_CONTENT_LENGTH"])
    except RequestEntityTooLarge:
        return problem(413, "request body too large", "(body)")
    why = signature_problem(
        raw,
        request.headers.get("X-Slack-Request-Timestamp"),
        request.headers.get("X-Slack-Signature"),
        secret.reveal(),
        time.time(),
    )
    if why is not None:
        log.warning("Slack interaction refused: %s", why)
        return problem(401, why, "X-Slack-Signature")
    rt = receiver.runtime
    # The signature covers the timestamp and the body: the same signature again is the same
    # request sent twice. Remembered for as long as its timestamp passes the check above.
    signature = request.headers.get("X-Slack-Signature", "").strip()
    try:
        first = first_delivery(rt.redis, "slack", signature, REPLAY_WINDOW_SECONDS)
    except RedisError:
        return problem(503, "cannot record the click right now; click again")
    if not first:
        log.warning("Slack interaction refused: a replay of a request already received")
        return problem(
            409, "this signed request was received before; nothing ran", "X-Slack-Signature"
        )
    click = parse_click(raw)
    if isinstance(click, str):
        return problem(400, click, "payload")
    approver = rt.policy.slack.approvers.get(click["user"])
    if approver is None:
        why = (
            f"Slack user {click['user']} is not mapped to an approver "
            "(communication.slack.approvers); nothing ran"
        )
        log.warning("Slack click refused: %s", why)
        return problem(403, why, "user")
    queue = actions_queue(receiver.settings.queue)

    def send(name: str, args: list[Any]) -> None:
        receiver.messages.app.send_task(name, args=args, queue=queue)

    try:
        if click["action"] == APPROVE:
            outcome = approval.approve(rt, click["proposal_id"], approver, "slack", send)
        else:
            outcome = approval.deny(rt, click["proposal_id"], approver, "slack")
        answer = outcome.said(slack_mentions(rt.policy.slack.approvers))
        proposal = approval.proposals(rt).get(click["proposal_id"])
        if proposal is not None and click["channel"]:
            request_ = {
                "what": "click",
                "incident_id": proposal.incident_id,
                "proposal_id": proposal.id,
                "user": click["user"],
                "channel": click["channel"],
                "message_ts": click["message_ts"],
                "thread_ts": click["thread_ts"],
                "answer": answer,
            }
            tell_slack(rt, request_)
    except RedisError:
        return problem(503, "cannot record the click right now; click again")
    log.info("Slack %s of %s by %s: %s", click["action"], click["proposal_id"], approver, answer)
    # Slack shows nothing of this body for block_actions; the answer reaches the clicker as an
    # ephemeral message from the task above. It is kept here for logs and tests.
    return jsonify(status=outcome.status, text=answer, proposal_id=outcome.proposal_id)


def slack_mentions(approvers: Mapping[str, str]) -> Callable[[str], str]:
    """Return how an answer to Slack names a person: an approver as a mention (`<@U123>`
    shows as the person's name), anyone else as they are named."""
    users = {identity: user for user, identity in approvers.items()}

    def name(person: str) -> str:
        return " and ".join(
            f"<@{users[one]}>" if one in users else one for one in person.split(" and ")
        )

    return name
