"""The steps every webhook source shares: JSON check, durable recording, enqueueing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from wsgiref.types import WSGIEnvironment

from flask import Response
from redis import RedisError
from redis.sentinel import MasterNotFoundError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_input_stream

from tasks.store.deliveries import NotReplicated, Recorded
from triage import strict_json
from triage.models import PayloadError
from webhooks.body_deadline import SlowBody
from webhooks.errors import problem
from webhooks.receiver import Receiver

log = logging.getLogger(__name__)
Parsed = TypeVar("Parsed")

# While the Sentinels are between primaries (the old one down, a replica not yet promoted:
# ~5 s in the failover bench) nothing can be recorded anywhere. A delivery that arrives then
# waits up to this long for the new primary instead of a 503 that leaves it to the sender's
# next try (in the bench, the P0's came 3.7 s after the promotion). Short enough for a sender's
# timeout; a longer failover still gets its 503.
FAILOVER_GRACE_SECONDS = 5.0
FAILOVER_POLL_SECONDS = 0.25


def record_through_failover(
    record: Callable[[], Recorded],
    grace: float = FAILOVER_GRACE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Recorded:
    """Return record()'s result, trying again while the Sentinels name no primary, up to `grace`.

    Only MasterNotFoundError (no Sentinel names a primary that is up) is waited out: it says
    a failover is under way and that nothing was written. Other errors raise at once.
    """
    deadline = clock() + grace
    while True:
        try:
            return record()
        except MasterNotFoundError:
            if clock() >= deadline:
                raise
            sleep(FAILOVER_POLL_SECONDS)


def require_json(content_type: str | None) -> Response | None:
    """Return a 415 response unless `content_type` declares a JSON body."""
    mimetype = parse_options_header(content_type)[0].lower()  # media types ignore case
    # The same test as Flask's request.is_json: application/json or application/*+json.
    if mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        return None
    return problem(415, "expected Content-Type: application/json", "Content-Type")


def read_body(environ: WSGIEnvironment, max_bytes: int) -> bytes:
    """Return the whole request body; raise RequestEntityTooLarge past `max_bytes`, however sent."""
    # A chunked body has no Content-Length: Werkzeug then stops reading at its limit and
    # returns what it has, so a longer body would come back cut. Reading one byte more than
    # the cap tells a body of exactly the cap from a longer one.
    body = get_input_stream(environ, max_content_length=max_bytes + 1).read()
    if len(body) > max_bytes:
        raise RequestEntityTooLarge()
    return body


def read_body_or_problem(
    receiver: Receiver, source: str, environ: WSGIEnvironment, max_bytes: int
) -> bytes | Response:
    """Return the whole body, or the rejection saying why it could not be read (413, 408, 400)."""
    try:
        return read_body(environ, max_bytes)
    except RequestEntityTooLarge:  # by its Content-Length, or by what a chunked body held
        too_large = problem(413, "request body too large", "(body)")
        return receiver.metrics.rejected(source, "too_large", too_large)
    except SlowBody as exc:  # a few bytes, then silence: webhooks/body_deadline.py
        slow = problem(408, str(exc.description), "(body)")
        return receiver.metrics.rejected(source, "slow_body", slow)
    except HTTPException as exc:  # e.g. ClientDisconnected: a body cut short
        why = f"cannot read the body ({type(exc).__name__}): it ended early or was invalid"
        unreadable = problem(exc.code or 400, why, "(body)")
        return receiver.metrics.rejected(source, "unreadable", unreadable)


def record_or_503(receiver: Receiver, **record: Any) -> Recorded | Response:
    """Record and enqueue the delivery; 503 when Redis cannot be reached (the sender retries)."""
    try:
        return record_through_failover(lambda: receiver.runtime.deliveries.record(**record))
    except NotReplicated as exc:
        # A 2xx must survive a failover: unconfirmed on replicas, the sender retries (and the
        # retry, finding the record, dedups).
        log.error("%s delivery %s not replicated: %s", record["source"], exc.delivery_id, exc)
        return receiver.metrics.rejected(
            record["source"],
            "unreplicated",
            problem(503, f"recorded, but not confirmed on replicas: {exc}; retry"),
        )
    except RedisError as exc:
        log.error("cannot record %s delivery: %s", record["source"], type(exc).__name__)
        return receiver.metrics.rejected(
            record["source"],
            "unavailable",
            problem(503, "cannot record the delivery right now; retry"),
        )


def parse_or_400(
    receiver: Receiver, source: str, raw: bytes, parse: Callable[[Any], Parsed]
) -> Parsed | Response:
    """Parse the body with `parse`; a 400 naming the field when it is not what it should be."""
    try:
        return parse(strict_json.loads(raw))
    except PayloadError as exc:
        bad = problem(400, exc.problem, exc.field)
    return receiver.metrics.rejected(source, "invalid", bad)


def kept_headers(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """Return the named headers that are present (never credentials)."""
    return {name: value for name in names if (value := headers.get(name)) is not None}
