"""Helpers the tests share: constants, waiting, payloads, a health server (workers: workers.py).

Fixtures live in `tests/conftest.py`; everything here is plain code any test may import.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

PROJECT = Path(__file__).resolve().parent.parent.parent
SAMPLE = PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json"
TOKEN = "am-test-token-5f1c"
PD_TOKEN = "pd-test-token-8a2e"
PD_WEBHOOK_SECRET = "whsec-current-9f2a"
LINK_SECRET = "link-secret-4b1d"
SLACK_SIGNING_SECRET = "slack-signing-7c3e"
SLACK_APPROVER = ("U0DANA", "dana@eafix.example")  # a Slack user the test policy maps
PUBLIC_URL = "https://responder.eafix.example"  # links are re-aimed at the test's receiver
INTAKE_QUEUE = "responder-intake-test"  # no worker reads it: what a receiver test queues stays


def wait_for(check: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds.

    The timeout is a deadline for a test that is failing, never a measure of speed: a passing
    test returns as soon as `check` holds, so a generous one costs nothing and a busy machine
    (two cores shared with other work) does not fail what is not broken.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def answers_health(url: str, process: subprocess.Popen[bytes] | None = None, log: str = "") -> bool:
    """Return True once the receiver at `url` answers /healthz with 200 (poll it with wait_for);
    fail at once if `process`, the server a test started, has exited, naming its `log`."""
    if process is not None:
        assert process.poll() is None, f"the receiver at {url} exited: see {log}"
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or slow to answer on a busy machine
        return False


def stop_server(process: subprocess.Popen[bytes], how: signal.Signals = signal.SIGTERM) -> None:
    """Stop a server a test started: `how` (gunicorn: SIGTERM graceful, SIGQUIT quick), then
    SIGKILL if it is still there after 60 s."""
    process.send_signal(how)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=60)


def worker_redis_url(url: str, worker: str | None) -> str:
    """Return the Redis URL of one pytest-xdist worker: database N + its index (gw1: N + 1).

    Each worker has a database of its own, so its Celery queues, its worker heartbeats and its
    `responder:*` keys are its own, and clearing them touches no other worker's test.
    """
    if worker is None or not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) + int(worker[2:])
    return urlunsplit(parts._replace(path=f"/{db}"))


def clear_responder_keys(client: redis.Redis) -> None:
    """Delete every `responder:*` key of the client's database (Celery's own keys stay: a
    running worker needs its `_kombu.binding.*`)."""
    for key in client.scan_iter("responder:*"):
        client.delete(key)


def sample_payload(**changes: Any) -> dict[str, Any]:
    """Return the bundled sample Alertmanager payload with top-level fields changed."""
    payload = json.loads(SAMPLE.read_text())
    payload.update(changes)
    return payload


class HealthServer:
    """EAFIX-like services answering /<service>/healthz with a settable status."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.delay: dict[str, float] = {}
        self.hits: Counter[str] = Counter()  # requests per service
        # Whole paths answered with a JSON body of their own (EAFIX's /api/positions, ...).
        self.bodies: dict[str, Any] = {}
        self._server = make_server(
            "127.0.0.1", 0, self, threaded=True, request_handler=QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = Request(environ).path
        if path in self.bodies:
            body = json.dumps(self.bodies[path])
            return Response(body, content_type="application/json")(environ, start_response)
        service = path.strip("/").split("/")[0]
        self.hits[service] += 1
        time.sleep(self.delay.get(service, 0))
        status = self.status.get(service, "ok")
        body = json.dumps({"status": status, "checks": {"self": status}})
        code = 200 if status == "ok" else 503
        return Response(body, status=code, content_type="application/json")(environ, start_response)

    def stop(self) -> None:
        self._server.shutdown()


class QuietHandler(WSGIRequestHandler):
    """A request handler that logs nothing (the tests' servers would flood the output)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def post_alert(base_url: str, payload: dict[str, Any], token: str = TOKEN) -> requests.Response:
    """POST an Alertmanager payload to the receiver with a bearer token."""
    return requests.post(
        f"{base_url}/webhooks/alertmanager",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


PAGERDUTY_NAMES = {"P0": "P1", "P1": "P2", "P2": "P3", "P3": "P4"}  # the built-in policy's mapping


def named(priority: str) -> str:
    """Return a priority as notes name it, with PagerDuty's name: `P0 (PagerDuty: P1)`."""
    return f"{priority} (PagerDuty: {PAGERDUTY_NAMES[str(priority)]})"
