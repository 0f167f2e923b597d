"""POST /webhooks/alertmanager: Alertmanager's webhook_config payload, version 4."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from tasks.deliveries import Claim, new_delivery_id
from tasks.pipeline import NOTE_RESOLVED, RESPOND
from triage.classify import classify, most_severe
from triage.models import parse_alertmanager
from webhooks.auth import reject_unauthenticated
from webhooks.intake import kept_headers, parse_or_400, record_or_503, require_json
from webhooks.receiver import current_receiver

log = logging.getLogger(__name__)
blueprint = Blueprint("alertmanager", __name__)

# Headers worth keeping with a delivery; credentials are never stored.
KEPT_HEADERS = ("User-Agent", "Content-Type", "Content-Length")
SOURCE = "alertmanager"


@blueprint.post("/webhooks/alertmanager")
def receive_alertmanager() -> Response | tuple[Response, int]:
    """Authenticate, validate, record, classify and enqueue one Alertmanager notification."""
    receiver = current_receiver()
    if rejection := reject_unauthenticated(receiver.settings):
        return receiver.metrics.rejected(SOURCE, "unauthenticated", rejection)
    if rejection := require_json():
        return receiver.metrics.rejected(SOURCE, "content_type", rejection)
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH, unparsed
    group = parse_or_400(receiver, SOURCE, raw, parse_alertmanager)
    if isinstance(group, Response):
        return group

    now = datetime.now(UTC)
    classified = [(alert, classify(alert, receiver.runtime.policy, now)) for alert in group.alerts]
    firing = [c for a, c in classified if a.status == "firing"]
    overall = most_severe(firing) or most_severe(c for _, c in classified)
    assert overall is not None  # parse_alertmanager guarantees at least one alert
    delivery_id = new_delivery_id(now)
    messages = []
    if group.firing:
        messages.append(receiver.messages.build(RESPOND, [delivery_id, 1], "start"))
    if len(group.firing) < len(group.alerts):
        messages.append(receiver.messages.build(NOTE_RESOLVED, [delivery_id], "resolved"))
    recorded = record_or_503(
        receiver,
        delivery_id=delivery_id,
        source=SOURCE,
        raw_body=raw,
        headers=kept_headers(KEPT_HEADERS),
        dedup_keys=[
            (alert.dedup_key, "start" if alert.status == "firing" else "resolved")
            for alert in group.alerts
        ],
        fields={
            "classification": overall.to_dict(),
            "incident_key": group.incident_key,
            "group_key": group.group_key,
            "truncated_alerts": group.truncated_alerts,
            "alerts": [
                {
                    "fingerprint": alert.fingerprint,
                    "name": alert.name,
                    "status": alert.status,
                    "dedup_key": alert.dedup_key,
                    "classification": c.to_dict(),
                }
                for alert, c in classified
            ],
        },
        now=now,
        claim=Claim.ALERTMANAGER,
        incident=group.incident_key,
        idle_reason="not started: no new firing alert",
        messages=messages,
    )
    if isinstance(recorded, Response):
        return recorded
    receiver.metrics.accepted(SOURCE, recorded, [c.priority.value for c in firing])
    return jsonify(
        delivery_id=recorded.delivery_id,
        priority=overall.priority.value,
        duplicate=recorded.duplicate,
    ), 202
