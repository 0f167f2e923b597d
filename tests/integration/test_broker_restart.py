"""A real worker stays up across a restart of its Redis, holding a message it has not acked.

Before tasks/broker_guard.py this exited every time: `Unrecoverable error: AttributeError(
"'NoneType' object has no attribute 'hostname'")`. `bench/broker_restart.py` does it five
times in a row.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks import recovery
from tasks.celery_app import make_celery
from tasks.lanes import urgent_queue
from tasks.settings import settings_from_env
from tests.support import PROJECT, wait_for
from tests.support.redis_servers import RedisServer
from tests.support.workers import worker_command

HEARTBEAT = "responder:heartbeat"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", aof=True).start()
    yield server
    server.stop()


def test_a_worker_holding_an_unacked_message_stays_up_across_a_redis_restart(
    responder_env: dict[str, str], own_redis: RedisServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **responder_env,
        "RESPONDER_REDIS_URL": own_redis.url,
        "RESPONDER_LOG_TICKS": "1",  # the heartbeat's "received" line, waited for below
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            worker_command("restart"), cwd=PROJECT, env=env, stdout=log, stderr=log
        )
    try:
        wait_for(lambda: b"ready." in log_path.read_bytes(), 60, "the worker to start")
        settings = settings_from_env(env)
        app = make_celery(settings)
        # A task waiting for its countdown is held by the worker, unacknowledged: the state
        # in which a lost connection crashed it.
        app.send_task("tasks.pipeline.heartbeat", countdown=300)
        wait_for(lambda: b"received" in log_path.read_bytes(), 30, "the worker to hold it")
        state = own_redis.client()
        wait_for(lambda: recovery.live_tags(state), 30, "its heartbeat to claim the message")

        own_redis.restart()
        wait_for(
            lambda: log_path.read_bytes().count(b"Connected to redis") >= 2 or worker.poll(),
            30,
            "the worker to reconnect (or exit)",
        )
        assert worker.poll() is None, log_path.read_text()[-3000:]
        assert b"Unrecoverable error" not in log_path.read_bytes()

        # And it goes on working: a task sent after the restart runs.
        app.send_task("tasks.pipeline.heartbeat")
        wait_for(lambda: state.get(HEARTBEAT), 30, "a task after the restart")

        # The held message cannot be acked on the new connection: the heartbeat lets go of
        # it, so `recover` gives it back now instead of kombu after the visibility timeout.
        # (The task sent after the restart is acknowledged a moment after it sets its stamp.)
        wait_for(
            lambda: state.hlen(recovery.UNACKED_KEY) == 1,
            30,
            "only the message held across the restart to stay unacknowledged",
        )
        wait_for(lambda: not recovery.live_tags(state), 30, "the heartbeat to let go of it")
        later = time.time() + recovery.GRACE_SECONDS
        assert recovery.reclaim_orphans(state, later) == [urgent_queue(settings.queue)]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=20)  # reaped: never left running for the GC to warn of
