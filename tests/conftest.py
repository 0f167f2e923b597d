"""Fixtures only: real Redis, the fake PagerDuty, a health server, a receiver and a worker.

The helpers they use, and that tests import, are in `tests/support`.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis
import yaml
from hypothesis import settings as hypothesis_settings
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from werkzeug.serving import make_server

from tasks.settings import Settings, settings_from_env
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import CHANNELS as SLACK_CHANNELS
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import SmtpServer
from tests.support import (
    INTAKE_QUEUE,
    LINK_SECRET,
    PD_TOKEN,
    PD_WEBHOOK_SECRET,
    PUBLIC_URL,
    SLACK_APPROVER,
    SLACK_SIGNING_SECRET,
    TOKEN,
    HealthServer,
    QuietHandler,
    clear_responder_keys,
    worker_redis_url,
)
from tests.support.workers import start_worker, stop_worker
from triage.policy import builtin_text

DEFAULT_TEST_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"  # README, Makefile
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/12"  # Makefile; xdist worker N uses db 12 + N

# Property tests: every run tries a hundred examples of each (Hypothesis's own default), enough
# to find what a change breaks at once; `make test-nightly` (HYPOTHESIS_PROFILE=nightly) tries
# two thousand, more than any test asked for before the profiles. No test sets max_examples
# itself, so that the profile decides.
hypothesis_settings.register_profile("suite", max_examples=100)
hypothesis_settings.register_profile("nightly", max_examples=2000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
# Workers start by the dozen here, also inside the `responder run`s and benches the tests
# start: each skips the plot warm-up, 0.8 s of CPU (a first plot loads matplotlib itself;
# tests/unit/test_worker_signals.py shows the switch). Every process a test starts inherits it.
os.environ.setdefault("RESPONDER_WARM_PLOTS", "0")


# Each test file's seconds in a recent whole run (scripts/file-seconds renews it).
FILE_SECONDS = Path(__file__).resolve().parent / "file_seconds.json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration: `-m "not integration"` runs the unit suite.
    Then order the files slowest first, each file's tests in their own order: `make test`
    hands whole files to its processes in this order (--dist loadfile --no-loadscope-reorder),
    so that the long ones start first and the short ones fill in at the end."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
    seconds = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.is_file() else {}
    items.sort(key=lambda item: -seconds.get(item.path.relative_to(config.rootpath).as_posix(), 0))


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """Return the URL of the real Redis the tests use; fail (never skip) when it is missing."""
    given = os.environ.get("RESPONDER_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    url = worker_redis_url(given, worker)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is required at {url} ({exc}; pytest-xdist worker {worker} takes the "
            "database of RESPONDER_TEST_REDIS_URL plus its index); run the tests with `make test`"
        )
    return url


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """Create a database of the tests' own on the test PostgreSQL; drop it at the end.

    The server is RESPONDER_TEST_POSTGRES_DSN's (`make test` starts a throwaway one when none
    takes a login there); its role must be allowed to create databases. Fail, never skip.
    """
    admin = os.environ.get("RESPONDER_TEST_POSTGRES_DSN", DEFAULT_TEST_POSTGRES_DSN)
    options = conninfo_to_dict(admin)
    where = f"{options.get('host', 'localhost')}:{options.get('port', 5432)}"  # no password
    # The pid names whose it is: the processes of one run create and drop theirs at any time.
    name = f"responder_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is required at {where} (RESPONDER_TEST_POSTGRES_DSN), with a role "
            f"that may create databases ({type(exc).__name__}: {exc}); run the tests with "
            "`make test`, which starts one when none answers"
        )
    try:
        yield make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            # FORCE (PostgreSQL 13+): a connection a failed test left open must not keep it.
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """Return a client of the test Redis with the responder's keys cleared before the test."""
    client = redis.Redis.from_url(redis_url)
    clear_responder_keys(client)
    yield client
    client.close()


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
    slack = policy["communication"]["slack"]
    slack["approvers"] = dict([SLACK_APPROVER])
    for entry in slack["channels"].values():  # by id, as the README advises
        entry["channel"] = SLACK_CHANNELS[entry["channel"]]
    # The trading desk is called when the evidence shows trading hit (health_server.bodies
    # says so), whatever the day the tests run on.
    policy["communication"]["trading_desk"]["call"] = {
        "requester_id": "PREQ001",
        "targets": [{"id": "PDESK01", "type": "escalation_policy_reference"}],
        "market_hours_only": False,
    }
    # Tests send many unrelated groups on the same few services within seconds: with
    # correlation on they would join one another. Correlation acting is tested with its own
    # policy (tests/integration/test_correlation_live.py); here it decides and records only.
    policy["correlation"]["mode"] = "shadow"
    # The network checks reach this machine only: the broker is the health server's path, the
    # TCP dependency its port (tests/integration/test_diagnostics.py probes the failures).
    address = health_server.base_url.removeprefix("http://")
    policy["diagnostics"]["external_dependencies"] = [
        {"name": "broker-api", "url": f"{health_server.base_url}/broker-api/"},
        {"name": "redis", "tcp": address},
    ]
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
def fake_slack() -> Iterator[FakeSlack]:
    """Run the spec-checking fake Slack Web API on a loopback HTTPS port."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """Run a real SMTP server (aiosmtpd) on a loopback port; the worker e-mails through it."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    """Return the SMTP server with what it received, and any scripted replies, cleared."""
    smtp_server.reset()
    yield smtp_server
    smtp_server.reset()


@pytest.fixture(scope="session")
def responder_env(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    fake_pagerduty: FakePagerDuty,
    fake_slack: FakeSlack,
    test_policy: Path,
    smtp_server: SmtpServer,
) -> dict[str, str]:
    """Return the RESPONDER_* environment shared by the in-test receiver and the worker."""
    var = tmp_path_factory.mktemp("var")
    return {
        "RESPONDER_REDIS_URL": redis_url,
        # The test Redis stands in for EAFIX's, so that the `redis` collector runs.
        "RESPONDER_TARGET_REDIS_URL": redis_url,
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
        "RESPONDER_SLACK_TOKEN": fake_slack.token,
        "RESPONDER_SLACK_API_URL": fake_slack.base_url,
        "RESPONDER_SLACK_CA_FILE": fake_slack.ca_file,
        "RESPONDER_SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "RESPONDER_SMTP_HOST": "127.0.0.1",
        "RESPONDER_SMTP_PORT": str(smtp_server.port),
        "RESPONDER_SMTP_STARTTLS": "0",  # STARTTLS and AUTH: tests/integration/test_email.py
        "RESPONDER_SMTP_TIMEOUT": "5",
        "RESPONDER_SMTP_RETRY_BASE": "0.2",
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
    # Messages left by receiver tests that ran without a worker would be consumed first.
    redis.Redis.from_url(responder_env["RESPONDER_REDIS_URL"]).delete(
        "responder", "unacked", "unacked_index"
    )
    process = start_worker(responder_env, log_path, "test", concurrency=3)
    try:
        yield log_path
    finally:
        stop_worker(process)


@pytest.fixture(scope="session")
def receiver(settings: Settings) -> Iterator[str]:
    """Serve the receiver app on a loopback port; yield its base URL."""
    from webhooks import create_app

    server = make_server(
        "127.0.0.1", 0, create_app(settings), threaded=True, request_handler=QuietHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def slack(fake_slack: FakeSlack) -> Iterator[FakeSlack]:
    """Return the fake Slack with its state cleared; fail the test on off-spec calls."""
    fake_slack.reset()
    yield fake_slack
    assert [c.rejected for c in fake_slack.rejected()] == [], "calls Slack's spec rejects"


@pytest.fixture
def pagerduty(fake_pagerduty: FakePagerDuty) -> Iterator[FakePagerDuty]:
    """Return the fake PagerDuty with its state cleared; fail the test on off-spec calls."""
    fake_pagerduty.reset()
    yield fake_pagerduty
    assert fake_pagerduty.rejected() == [], "requests PagerDuty's OpenAPI spec rejects"
