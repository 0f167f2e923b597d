"""Durable before 2xx: with Redis gone the receiver answers 503, and recovers by itself."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from tasks.lanes import urgent_queue
from tasks.settings import Secret, Settings
from tests.integration.test_pagerduty_webhook import EVENT, HISTORY, SECRET, sign
from tests.support import TOKEN, sample_payload, wait_for
from webhooks import create_app


class PrivateRedis:
    """A redis-server of the test's own, which the test may stop and start."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; `make test` installs it")
        self.binary, self.directory = binary, directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=120, what="the private redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        yield server
    finally:  # also when it never answered: no redis-server is left behind
        server.stop()


def test_redis_down_gives_503_then_recovers_without_restarting(
    private_redis: PrivateRedis, settings: Settings
) -> None:
    app = create_app(
        replace(
            settings,
            redis_url=private_redis.url,
            pagerduty_webhook_secrets=(Secret(SECRET),),
            **HISTORY,  # EVENT as recorded
        )
    )
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    body = json.dumps(EVENT).encode()
    pd_headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign(body)}

    assert (
        client.post("/webhooks/alertmanager", json=sample_payload(), headers=bearer).status_code
        == 202
    )

    private_redis.stop()
    down_am = client.post(
        "/webhooks/alertmanager", json=sample_payload(groupKey="g2"), headers=bearer
    )
    down_pd = client.post("/webhooks/pagerduty", data=body, headers=pd_headers)
    assert (down_am.status_code, down_pd.status_code) == (503, 503)
    assert down_am.get_json()["error"] == "cannot record the delivery right now; retry"
    assert client.get("/readyz").status_code == 503

    private_redis.start()
    again = client.post(
        "/webhooks/alertmanager", json=sample_payload(groupKey="g2"), headers=bearer
    )
    assert again.status_code == 202
    assert again.get_json()["duplicate"] is False  # the refused attempt left no dedup key
    assert client.post("/webhooks/pagerduty", data=body, headers=pd_headers).status_code == 202
    assert client.get("/readyz").status_code == 200
    # Both deliveries were stored and their pipelines queued on the restarted Redis.
    stored = redis.Redis.from_url(private_redis.url)
    assert stored.zcard("responder:deliveries") == 2
    # The sample is P1: both on the urgent lane.
    assert stored.llen(urgent_queue(settings.queue)) == 2


def test_a_redis_that_answers_but_takes_no_writes_makes_the_host_not_ready(
    private_redis: PrivateRedis, settings: Settings
) -> None:
    # A primary demoted to a replica (after a failover) answers PING and refuses every write:
    # a load balancer must stop sending webhooks here, which a ping alone would not tell it.
    client = create_app(replace(settings, redis_url=private_redis.url)).test_client()
    assert client.get("/readyz").status_code == 200
    redis.Redis.from_url(private_redis.url).replicaof("127.0.0.1", "1")  # nobody: read-only
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["redis"] == "refuses writes: ReadOnlyError"
    assert ready.get_json()["checks"]["record_deliveries"] == "no"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    refused = client.post("/webhooks/alertmanager", json=sample_payload(), headers=bearer)
    assert refused.status_code == 503  # and Alertmanager retries, here or elsewhere
