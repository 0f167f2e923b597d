"""Shared fixtures: real Redis, the fake PagerDuty, a health server, a receiver and a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tasks.settings import Settings, settings_from_env
from tests.fakes.pagerduty import FakePagerDuty
from triage.policy import builtin_text

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT / "examples" / "alertmanager-sample.json"
TOKEN = "am-test-token-5f1c"
PD_TOKEN = "pd-test-token-8a2e"
PD_WEBHOOK_SECRET = "whsec-current-9f2a"
LINK_SECRET = "link-secret-4b1d"
PUBLIC_URL = "https://responder.eafix.example"  # links are re-aimed at the test's receiver
INTAKE_QUEUE = "responder-intake-test"  # no worker reads it: what a receiver test queues stays


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def worker_command(hostname: str, concurrency: int = 1) -> list[str]:
    """Return the command of a test's own Celery worker (no gossip, no mingle: it starts fast)."""
    return [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "INFO",
        "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
        "--hostname", f"{hostname}@%h",
    ]  # fmt: skip


def sample_payload(**changes: Any) -> dict[str, Any]:
    """Return the bundled sample Alertmanager payload with top-level fields changed."""
    payload = json.loads(SAMPLE.read_text())
    payload.update(changes)
    return payload


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the URL of the real Redis the tests use; fail (never skip) when it is missing."""
    url = os.environ.get("RESPONDER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {url} ({exc}); run the tests with `make test`")
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """Return a client of the test Redis with the responder's keys cleared before the test."""
    client = redis.Redis.from_url(redis_url)
    # Only our keys: Celery's own (_kombu.binding.*) must survive for the running worker.
    for key in client.scan_iter("responder:*"):
        client.delete(key)
    yield client
    client.close()


class HealthServer:
    """EAFIX-like services answering /<service>/healthz with a settable status."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.delay: dict[str, float] = {}
        self.hits: Counter[str] = Counter()  # requests per service
        self._server = make_server(
            "127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        service = Request(environ).path.strip("/").split("/")[0]
        self.hits[service] += 1
        time.sleep(self.delay.get(service, 0))
        status = self.status.get(service, "ok")
        body = json.dumps({"status": status, "checks": {"self": status}})
        code = 200 if status == "ok" else 503
        return Response(body, status=code, content_type="application/json")(environ, start_response)

    def stop(self) -> None:
        self._server.shutdown()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture(scope="session")
def health_server() -> Iterator[HealthServer]:
    """Serve health endpoints for the test catalog."""
    server = HealthServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_policy(tmp_path_factory: pytest.TempPathFactory, health_server: HealthServer) -> Path:
    """Write the built-in policy with its catalog pointed at the local health server."""
    policy = yaml.safe_load(builtin_text())
    for service in policy["catalog"]:
        service["health_url"] = f"{health_server.base_url}/{service['name']}/healthz"
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def fake_pagerduty() -> Iterator[FakePagerDuty]:
    """Run the schema-validating fake PagerDuty on a loopback HTTPS port."""
    fake = FakePagerDuty(token=PD_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def responder_env(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    fake_pagerduty: FakePagerDuty,
    test_policy: Path,
) -> dict[str, str]:
    """Return the RESPONDER_* environment shared by the in-test receiver and the worker."""
    var = tmp_path_factory.mktemp("var")
    return {
        "RESPONDER_REDIS_URL": redis_url,
        "RESPONDER_POLICY": str(test_policy),
        "RESPONDER_ALERTMANAGER_TOKEN": TOKEN,
        "RESPONDER_PAGERDUTY_TOKEN": PD_TOKEN,
        "RESPONDER_PAGERDUTY_WEBHOOK_SECRETS": PD_WEBHOOK_SECRET,
        "RESPONDER_PAGERDUTY_FROM": "responder@eafix.example",
        "RESPONDER_PAGERDUTY_API_URL": fake_pagerduty.base_url,
        "RESPONDER_PAGERDUTY_CA_FILE": fake_pagerduty.ca_file,
        "RESPONDER_BUNDLE_DIR": str(var / "bundles"),
        "RESPONDER_OUTBOX_DIR": str(var / "outbox"),
        "RESPONDER_INCIDENT_LOOKUP_ATTEMPTS": "20",
        "RESPONDER_INCIDENT_LOOKUP_DELAY": "0.5",
        "RESPONDER_COLLECTOR_TIMEOUT": "2",
        "RESPONDER_PAGERDUTY_RETRY_BASE": "0.2",
        "RESPONDER_LINK_SECRET": LINK_SECRET,
        "RESPONDER_PUBLIC_URL": PUBLIC_URL,
    }


@pytest.fixture(scope="session")
def settings(responder_env: dict[str, str]) -> Settings:
    """Return the Settings the receiver and worker run with."""
    return settings_from_env(responder_env)


@pytest.fixture
def intake_settings(settings: Settings, redis_client: redis.Redis) -> Iterator[Settings]:
    """Return Settings for receiver-only tests: their queue is one no worker reads."""
    # On the worker's queue, the session worker (started by an earlier test) would take the
    # message, change the delivery under the test and post to the fake PagerDuty mid-test.
    redis_client.delete(INTAKE_QUEUE)
    yield replace(settings, queue=INTAKE_QUEUE)
    redis_client.delete(INTAKE_QUEUE)


@pytest.fixture(scope="session")
def worker(
    responder_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Start a real Celery worker process; yield the path of its log."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, **responder_env}
    # Messages left by receiver tests that ran without a worker would be consumed first.
    redis.Redis.from_url(responder_env["RESPONDER_REDIS_URL"]).delete(
        "responder", "unacked", "unacked_index"
    )
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "INFO",
        "--concurrency", "3", "--without-gossip", "--without-mingle", "--hostname", "test@%h",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=log)
    try:
        wait_for(
            lambda: b"ready." in log_path.read_bytes() or process.poll() is not None,
            timeout=60,
            what="the Celery worker to start",
        )
        if process.poll() is not None:
            pytest.fail(f"Celery worker exited at start:\n{log_path.read_text()[-3000:]}")
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def receiver(settings: Settings) -> Iterator[str]:
    """Serve the receiver app on a loopback port; yield its base URL."""
    from webhooks import create_app

    server = make_server(
        "127.0.0.1", 0, create_app(settings), threaded=True, request_handler=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def pagerduty(fake_pagerduty: FakePagerDuty) -> Iterator[FakePagerDuty]:
    """Return the fake PagerDuty with its state cleared; fail the test on off-spec calls."""
    fake_pagerduty.reset()
    yield fake_pagerduty
    assert fake_pagerduty.rejected() == [], "requests PagerDuty's OpenAPI spec rejects"


def post_alert(base_url: str, payload: dict[str, Any], token: str = TOKEN) -> requests.Response:
    """POST an Alertmanager payload to the receiver with a bearer token."""
    return requests.post(
        f"{base_url}/webhooks/alertmanager",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
