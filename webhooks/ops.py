"""Operational routes: liveness, readiness and the delivery log."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify
from redis import RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tasks.store import worker_marks
from webhooks.auth import reject_unauthenticated
from webhooks.errors import problem
from webhooks.receiver import current_receiver

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Answer 200 while the process serves requests (liveness; a load balancer asks /readyz)."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Answer 200 when this host can record a delivery now, else 503 saying what failed.

    For a load balancer: a write, not a ping, because a Redis that answers but takes no writes
    (a replica after a failover, READONLY; a full disk) cannot record a delivery either.
    """
    runtime = current_receiver().runtime
    checks: dict[str, str] = {"policy": runtime.policy.source}
    ready = True
    try:
        worker_marks.probe_write(runtime.redis)
        checks["redis"] = "ok"
        checks["record_deliveries"] = "ok"
        checks["last_heartbeat"] = worker_marks.last_heartbeat(runtime.redis) or "none yet"
        watchdog = runtime.watchdog.last_seen()
        checks["last_watchdog"] = watchdog.isoformat() if watchdog else "none yet"
    except (RedisConnectionError, RedisTimeoutError) as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["record_deliveries"] = "no"
        ready = False
    except RedisError as exc:  # answers, takes no writes: READONLY, OOM, MISCONF
        checks["redis"] = f"refuses writes: {type(exc).__name__}"
        checks["record_deliveries"] = "no"
        ready = False
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@blueprint.get("/deliveries/<delivery_id>")
def get_delivery(delivery_id: str) -> Response | tuple[Response, int]:
    """Return one delivery: source, time, dedup outcome, classification, pipeline, bundle."""
    receiver = current_receiver()
    if rejection := reject_unauthenticated(receiver.settings):
        return rejection
    try:
        delivery = receiver.runtime.deliveries.get(delivery_id)
    except RedisError:
        return problem(503, "cannot read the delivery log right now; retry")
    if delivery is None:
        return problem(404, f"no delivery {delivery_id!r} (unknown or past retention)", "id")
    raw = delivery.pop("raw_body", b"")
    delivery["body_bytes"] = len(raw)
    delivery["payload"] = json.loads(raw)
    return jsonify(delivery)
