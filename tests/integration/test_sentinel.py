"""Redis Sentinel, real processes: the receiver, the store and a Celery worker follow a failover,
and WAIT keeps a 2xx from being answered before a replica holds the delivery."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tasks.celery_app import make_celery
from tasks.runtime import Runtime, open_redis
from tasks.settings import Settings
from tasks.store.deliveries import INDEX_KEY
from tests.support import PROJECT, TOKEN, sample_payload, wait_for
from tests.support.redis_servers import RedisServer, SentinelSet
from tests.support.workers import worker_command
from webhooks import create_app

BEARER = {"Authorization": f"Bearer {TOKEN}"}
HEARTBEAT = "responder:heartbeat"


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(tmp_path / "sentinel-set").start()
    yield servers
    servers.stop()


@pytest.fixture
def sentinel_settings(settings: Settings, sentinel_set: SentinelSet) -> Settings:
    return replace(
        settings, redis_url=sentinel_set.url, redis_sentinel_master=sentinel_set.master_name
    )


@pytest.fixture
def sentinel_worker(
    responder_env: dict[str, str], sentinel_set: SentinelSet, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Start a real Celery worker whose broker and state are the Sentinel set."""
    log_path = tmp_path / "sentinel-worker.log"
    env = {**os.environ, **responder_env, **sentinel_set.env()}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            worker_command("sentinel", concurrency=2), cwd=PROJECT, env=env, stdout=log,
            stderr=log,
        )  # fmt: skip
    try:
        wait_for(
            lambda: b"ready." in log_path.read_bytes() or process.poll() is not None,
            timeout=60,
            what="the Sentinel worker to start",
        )
        assert process.poll() is None, log_path.read_text()[-3000:]
        yield process, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)  # reaped: never left running for the GC to warn of


def record_read_and_run(client: FlaskClient, settings: Settings) -> None:
    """A delivery is answered 202 and read back; a task sent through the broker runs."""
    response = client.post(
        "/webhooks/alertmanager", json=sample_payload(groupKey=uuid.uuid4().hex), headers=BEARER
    )
    assert response.status_code == 202, response.get_json()
    delivery_id = response.get_json()["delivery_id"]
    # Read back by a client of its own, as the worker and the CLI do.
    assert Runtime(settings).deliveries.get(delivery_id) is not None

    state = open_redis(settings, socket_timeout=2)
    state.delete(HEARTBEAT)
    make_celery(settings).send_task("tasks.pipeline.heartbeat")
    wait_for(lambda: state.get(HEARTBEAT), timeout=30, what="the worker to run a task")


def test_receiver_store_and_worker_follow_the_primary_through_failover_and_its_death(
    sentinel_set: SentinelSet,
    sentinel_settings: Settings,
    sentinel_worker: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log_path = sentinel_worker
    # A 2xx only once the replica holds the delivery: it survives the primary's death below.
    waiting = replace(sentinel_settings, redis_wait_replicas=1, redis_wait_ms=2000)
    client = create_app(waiting).test_client()
    record_read_and_run(client, waiting)
    first = sentinel_set.master_port()

    sentinel_set.failover()  # an operator's switch: SENTINEL FAILOVER
    assert sentinel_set.master_port() != first
    record_read_and_run(client, waiting)

    sentinel_set.kill_master()  # the new primary's process dies: the old one takes over
    assert sentinel_set.master_port() == first
    # No replica is left to WAIT for: the same receiver would answer 503 (and should).
    single = create_app(sentinel_settings).test_client()
    record_read_and_run(single, sentinel_settings)

    assert process.poll() is None, "the worker exited on a failover"
    assert b"Unrecoverable error" not in log_path.read_bytes()
    # Every delivery is on the primary that holds the data now.
    assert open_redis(sentinel_settings).zcard(INDEX_KEY) == 3


@pytest.fixture(scope="module")
def replicated_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RedisServer, RedisServer]]:
    """One primary and its replica for the WAIT table (started once: seconds each time)."""
    folder = tmp_path_factory.mktemp("replicated")
    primary = RedisServer(folder / "primary").start()
    replica = RedisServer(folder / "replica", replica_of=primary.port).start()
    yield primary, replica
    replica.stop()
    primary.stop()


@pytest.fixture
def primary_and_replica(
    replicated_pair: tuple[RedisServer, RedisServer],
) -> tuple[RedisServer, RedisServer]:
    """The pair, emptied, with the replica in sync again (a case may have paused it)."""
    primary, replica = replicated_pair
    primary.client().flushall()
    wait_for(
        lambda: (
            replica.client().info("replication").get("master_link_status") == "up"
            and replica.client().dbsize() == 0
        ),
        timeout=20,
        what="the replica to sync",
    )
    return primary, replica


@pytest.mark.parametrize(
    ("wait_replicas", "replica_paused", "status", "why"),
    [
        (0, False, 202, None),  # no WAIT: a single node's 2xx
        (1, False, 202, None),  # the replica holds it
        (1, True, 503, "reached 0 of 1 replica(s) within 300 ms"),  # a replica that hangs
        (2, False, 503, "reached 1 of 2 replica(s) within 300 ms"),  # fewer than asked for
    ],
)
def test_a_2xx_waits_until_wait_replicas_hold_the_delivery_else_503_naming_why(
    settings: Settings,
    primary_and_replica: tuple[RedisServer, RedisServer],
    wait_replicas: int,
    replica_paused: bool,
    status: int,
    why: str | None,
) -> None:
    primary, replica = primary_and_replica
    waiting = replace(
        settings,
        redis_url=primary.url,
        queue="responder-wait-test",  # no worker reads it
        redis_wait_replicas=wait_replicas,
        redis_wait_ms=300,
    )
    client = create_app(waiting).test_client()
    payload = sample_payload(groupKey=uuid.uuid4().hex)
    if replica_paused:
        replica.pause()
    try:
        response = client.post("/webhooks/alertmanager", json=payload, headers=BEARER)
    finally:
        replica.resume()
    assert response.status_code == status, response.get_json()
    if why is not None:
        assert why in response.get_json()["error"]
        assert response.get_json()["error"].endswith("; retry")
    # Recorded either way: the sender's retry finds it and dedups.
    assert primary.client().zcard(INDEX_KEY) == 1
    if status == 503:
        healthy = create_app(replace(waiting, redis_wait_replicas=1)).test_client()
        retry = healthy.post("/webhooks/alertmanager", json=payload, headers=BEARER)
        assert retry.status_code == 202
        assert retry.get_json()["duplicate"] is True
