"""The steps every webhook source shares: JSON check, durable recording, enqueueing."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, request
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
    """Record and enqueue the delivery; 503 when Redis cannot be reached (the sender retries)."""
    try:
        return receiver.runtime.deliveries.record(**record)
    except RedisError as exc:
        log.error("cannot record %s delivery: %s", record["source"], type(exc).__name__)
        return receiver.metrics.rejected(
            record["source"],
            "unavailable",
            problem(503, "cannot record the delivery right now; retry"),
        )
