"""The steps every webhook source shares: JSON check, durable recording, enqueueing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Response, request
from kombu.exceptions import OperationalError
from redis import RedisError

from tasks.deliveries import Recorded
from webhooks.errors import problem
from webhooks.receiver import Receiver

log = logging.getLogger(__name__)


def require_json() -> Response | None:
    """Return a 415 response unless the request declares a JSON body."""
    if request.is_json:
        return None
    return problem(415, "expected Content-Type: application/json", "Content-Type")


def record_or_503(receiver: Receiver, **record: Any) -> Recorded | Response:
    """Record the delivery; when Redis cannot be reached, answer 503 so the sender retries."""
    try:
        return receiver.runtime.deliveries.record(**record)
    except RedisError as exc:
        log.error("cannot record %s delivery: %s", record["source"], type(exc).__name__)
        return receiver.metrics.rejected(
            record["source"],
            "unavailable",
            problem(503, "cannot record the delivery right now; retry"),
        )


def enqueue_or_release(
    receiver: Receiver,
    recorded: Recorded,
    source: str,
    tasks: Sequence[tuple[str, list[Any]]],
    incident: str = "",
) -> Response | None:
    """Send the delivery's tasks; on failure forget its dedup keys and answer 503."""
    try:
        for name, args in tasks:
            receiver.celery.send_task(name, args=args)
    except (RedisError, OperationalError) as exc:
        log.error("cannot enqueue delivery %s: %s", recorded.delivery_id, type(exc).__name__)
        try:
            # The sender's retry must be treated as new, not as a duplicate of this one.
            receiver.runtime.deliveries.release(recorded, source, incident)
            receiver.runtime.deliveries.update(recorded.delivery_id, pipeline="enqueue failed")
        except RedisError:
            log.error("cannot release delivery %s either", recorded.delivery_id)
        return receiver.metrics.rejected(
            source, "unavailable", problem(503, "cannot enqueue the delivery right now; retry")
        )
    return None
