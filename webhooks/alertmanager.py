"""POST /webhooks/alertmanager: Alertmanager's webhook_config payload, version 4."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
from kombu.exceptions import OperationalError
from redis import RedisError

from tasks.pipeline import RESPOND
from triage.classify import classify, most_severe
from triage.models import PayloadError, parse_alertmanager
from webhooks.auth import reject_unauthenticated
from webhooks.errors import problem
from webhooks.receiver import current_receiver

log = logging.getLogger(__name__)
blueprint = Blueprint("alertmanager", __name__)

# Headers worth keeping with a delivery; credentials are never stored.
KEPT_HEADERS = ("User-Agent", "Content-Type", "Content-Length")


@blueprint.post("/webhooks/alertmanager")
def receive_alertmanager() -> Response | tuple[Response, int]:
    """Authenticate, validate, record, classify and enqueue one Alertmanager notification."""
    receiver = current_receiver()
    if rejection := reject_unauthenticated(receiver.settings):
        return rejection
    if not request.is_json:
        return problem(415, "expected Content-Type: application/json", "Content-Type")
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH, unparsed
    try:
        group = parse_alertmanager(json.loads(raw))
    except ValueError as exc:
        if isinstance(exc, PayloadError):
            return problem(400, exc.problem, exc.field)
        return problem(400, f"body is not valid JSON: {exc}", "(body)")

    policy = receiver.runtime.policy
    now = datetime.now(UTC)
    classified = [(alert, classify(alert, policy, now)) for alert in group.alerts]
    firing = [c for a, c in classified if a.status == "firing"]
    overall = most_severe(firing) or most_severe(c for _, c in classified)
    assert overall is not None  # parse_alertmanager guarantees at least one alert
    store = receiver.runtime.deliveries
    try:
        recorded = store.record(
            source="alertmanager",
            raw_body=raw,
            headers={h: request.headers[h] for h in KEPT_HEADERS if h in request.headers},
            dedup_keys=[alert.dedup_key for alert in group.alerts],
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
                "pipeline": "recorded",
            },
            now=now,
        )
    except RedisError as exc:
        log.error("cannot record alertmanager delivery: %s", type(exc).__name__)
        return problem(503, "cannot record the delivery right now; retry", None)

    fresh_firing = [a for a in group.firing if a.dedup_key in recorded.fresh_keys]
    try:
        if fresh_firing:
            run = store.next_run(recorded.delivery_id)
            receiver.celery.send_task(RESPOND, args=[recorded.delivery_id, run])
            store.update(recorded.delivery_id, pipeline="queued")
        else:
            reason = "duplicate" if recorded.duplicate else "no new firing alert"
            store.update(recorded.delivery_id, pipeline=f"not started: {reason}")
    except (RedisError, OperationalError) as exc:
        log.error("cannot enqueue delivery %s: %s", recorded.delivery_id, type(exc).__name__)
        # Give the dedup keys back, so the sender's retry is treated as new.
        store.release_dedup("alertmanager", recorded.fresh_keys)
        return problem(503, "cannot enqueue the delivery right now; retry", None)
    return jsonify(
        delivery_id=recorded.delivery_id,
        priority=overall.priority.value,
        duplicate=recorded.duplicate,
    ), 202
