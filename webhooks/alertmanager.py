"""POST /webhooks/alertmanager: Alertmanager's webhook_config payload, version 4.

A plain WSGI endpoint mounted in front of the Flask app rather than a Flask view: Alertmanager
is the source that comes in storms (a post per alert group and repeat interval), and Flask's
per-request machinery cost more than half of the intake work itself (`bench/intake.py`). What
it answers is the same as a view's: JSON bodies, 4xx naming the problem, the latency metric.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from wsgiref.types import StartResponse, WSGIEnvironment

from flask import Response, request
from redis import RedisError
from werkzeug.datastructures import EnvironHeaders

from tasks.lanes import queue_for
from tasks.names import NOTE_RESOLVED, RESPOND
from tasks.store.deliveries import Claim, Coalescing, new_delivery_id
from triage.classify import classify, most_severe
from triage.models import AlertGroup, parse_alertmanager
from webhooks.auth import proxy_header, unauthenticated
from webhooks.errors import problem
from webhooks.intake import (
    kept_headers,
    parse_or_400,
    read_body_or_problem,
    record_or_503,
    require_json,
)
from webhooks.receiver import Receiver

log = logging.getLogger(__name__)

ROUTE = "/webhooks/alertmanager"
# Headers worth keeping with a delivery; credentials are never stored.
KEPT_HEADERS = ("User-Agent", "Content-Type", "Content-Length")
SOURCE = "alertmanager"


class AlertmanagerEndpoint:
    """The WSGI app of `POST /webhooks/alertmanager`, mounted at that path."""

    def __init__(self, receiver: Receiver, max_body_bytes: int) -> None:
        self.receiver = receiver
        self.max_body_bytes = max_body_bytes
        self._coalescing: Coalescing | None = None

    def coalescing(self) -> Coalescing:
        """Return when a delivery joins its incident's run, from the policy (read once)."""
        if self._coalescing is None:
            storm = self.receiver.runtime.policy.storm
            self._coalescing = Coalescing(
                storm.evidence_refresh.total_seconds(), storm.joined_alerts_every.total_seconds()
            )
        return self._coalescing

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request and record its latency."""
        started = time.perf_counter()
        # Below the mount point is another path, which Flask would not have matched either.
        route = "(unmatched)" if environ.get("PATH_INFO") else ROUTE
        try:
            answer = self.answer(environ)
        except Exception:  # what Flask's handler did for a view: a JSON 500, logged
            log.exception("unexpected error answering an Alertmanager delivery")
            answer = problem(500, "internal error; retry the delivery (duplicates are recognised)")
        finally:
            method = environ.get("REQUEST_METHOD", "")
            self.receiver.metrics.observe(route, method, time.perf_counter() - started)
        if isinstance(answer, Response):
            return answer(environ, start_response)
        # The accepted answer skips building a Response object: it is most of the traffic.
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        start_response("202 ACCEPTED", headers)
        return [answer]

    def flask_view(self) -> Response:
        """Answer as a Flask view; Flask's URL map lists ROUTE only to redirect `//` to it."""
        answer = self.by_method(request.environ)  # Flask matched the path
        if isinstance(answer, Response):
            return answer
        return Response(answer, 202, mimetype="application/json")

    def answer(self, environ: WSGIEnvironment) -> Response | bytes:
        """Return the rejection for one request, or the body of its 202 when recorded."""
        if environ.get("PATH_INFO"):
            return problem(404, "not found", "(path)")
        return self.by_method(environ)

    def by_method(self, environ: WSGIEnvironment) -> Response | bytes:
        """Receive a POST; answer OPTIONS with what is allowed and anything else with 405."""
        method = environ.get("REQUEST_METHOD")
        if method == "POST":
            return self.receive(environ)
        if method == "OPTIONS":
            response = Response(status=204)
        else:
            response = problem(405, "method not allowed: use POST", "(method)")
        response.headers["Allow"] = "OPTIONS, POST"
        return response

    def watchdog(self, group: AlertGroup, now: datetime) -> Response | bytes | None:
        """Note a firing Watchdog alert's arrival; answer a group of Watchdog alerts alone.

        Alertmanager's always-firing alert proves the pipeline works: it is never an incident
        and never pages. A group that holds other alerts too goes on (route Watchdog on its
        own, as examples/alertmanager.yml does). None: not a Watchdog-only group.
        """
        name = self.receiver.runtime.policy.watchdog_alertname
        ours = [a for a in group.alerts if a.name == name]
        if not ours:
            return None
        if any(a.status == "firing" for a in ours):
            try:
                self.receiver.runtime.watchdog.arrived(now)
            except RedisError as exc:
                log.error("cannot note a Watchdog arrival: %s", type(exc).__name__)
                return self.receiver.metrics.rejected(
                    SOURCE, "unavailable", problem(503, "cannot note the Watchdog now; retry")
                )
        if len(ours) < len(group.alerts):
            return None
        return json.dumps({"watchdog": True, "noted_at": now.isoformat()}).encode()

    def receive(self, environ: WSGIEnvironment) -> Response | bytes:
        """Authenticate, validate, record, classify and enqueue one Alertmanager notification."""
        receiver = self.receiver
        authorization, remote = environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR")
        forwarded = proxy_header(environ)
        if rejection := unauthenticated(authorization, remote, receiver.settings, forwarded):
            return receiver.metrics.rejected(SOURCE, "unauthenticated", rejection)
        if rejection := require_json(environ.get("CONTENT_TYPE")):
            return receiver.metrics.rejected(SOURCE, "content_type", rejection)
        raw = read_body_or_problem(receiver, SOURCE, environ, self.max_body_bytes)
        if isinstance(raw, Response):
            return raw
        group = parse_or_400(receiver, SOURCE, raw, parse_alertmanager)
        if isinstance(group, Response):
            return group

        now = datetime.now(UTC)
        policy = receiver.runtime.policy
        if watched := self.watchdog(group, now):
            return watched
        classified = [(alert, classify(alert, policy, now)) for alert in group.alerts]
        firing = [c for a, c in classified if a.status == "firing"]
        overall = most_severe(firing) or most_severe(c for _, c in classified)
        assert overall is not None  # parse_alertmanager guarantees at least one alert
        delivery_id = new_delivery_id(now)
        incident_key = group.incident_key  # a hash, and needed twice below
        messages = []
        queue = queue_for(receiver.settings.queue, overall.priority.value)  # P0/P1: urgent lane
        if firing:
            messages.append(
                receiver.messages.build(RESPOND, [delivery_id, 1], "start", None, queue)
            )
        if len(firing) < len(group.alerts):
            resolved = receiver.messages.build(
                NOTE_RESOLVED, [delivery_id], "resolved", None, queue
            )
            messages.append(resolved)
        recorded = record_or_503(
            receiver,
            delivery_id=delivery_id,
            source=SOURCE,
            raw_body=raw,
            headers=kept_headers(EnvironHeaders(environ), KEPT_HEADERS),
            dedup_keys=[
                (alert.dedup_key, "start" if alert.status == "firing" else "resolved")
                for alert in group.alerts
            ],
            fields={
                "classification": overall.to_dict(),
                "incident_key": incident_key,
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
            claim=Claim.ALERTMANAGER if firing else Claim.RELEASE,
            incident=incident_key,
            idle_reason="not started: no new firing alert",
            messages=messages,
            priority=overall.priority.value,
            coalescing=self.coalescing(),
        )
        if isinstance(recorded, Response):
            return recorded
        receiver.metrics.accepted(SOURCE, recorded, [c.priority.value for c in firing])
        answer = {
            "delivery_id": recorded.delivery_id,
            "priority": overall.priority.value,
            "duplicate": recorded.duplicate,
        }
        return json.dumps(answer).encode()
