"""Kill -9 of the worker mid-pipeline, then a fresh worker: exactly one evidence note."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_end_to_end import delivery, incident_key
from tests.support import QuietHandler, post_alert, sample_payload, wait_for
from tests.support.workers import give_back_held, kill_worker, start_worker, stop_worker
from webhooks import create_app

QUEUE = "responder-kill"
# Above the time limit, as the settings require. The tests do not wait for it: give_back_held
# returns the killed worker's messages once they are past the time limit, as `recover` would.
VISIBILITY_TIMEOUT = 6
LIMITS = {"RESPONDER_TASK_SOFT_TIME_LIMIT": "4", "RESPONDER_TASK_TIME_LIMIT": "5"}


@pytest.fixture
def kill_env(responder_env: dict[str, str], redis_url: str) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        **responder_env,
        **LIMITS,
        "RESPONDER_QUEUE": QUEUE,
        "RESPONDER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    yield env
    client.delete(QUEUE)


@pytest.fixture
def kill_receiver(settings: Settings) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, create_app(replace(settings, queue=QUEUE)), threaded=True,
        request_handler=QuietHandler,
    )  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_kill_9_mid_pipeline_then_a_fresh_worker_posts_one_evidence_note(
    kill_env: dict[str, str],
    kill_receiver: str,
    pagerduty: FakePagerDuty,
    health_server,
    redis_client,
    tmp_path: Path,
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", killed="yes"}')
    incident = pagerduty.add_incident(incident_key(payload))
    health_server.delay["risk-manager"] = 3  # the http collector waits out its 2 s timeout
    log = tmp_path / "workers.log"
    first = start_worker(kill_env, log, "kill-first", concurrency=3)
    second = None
    try:
        delivery_id = post_alert(kill_receiver, payload).json()["delivery_id"]
        wait_for(lambda: len(pagerduty.notes_for(incident)) >= 1, what="the first-response note")
        kill_worker(first)  # mid-pipeline: the collectors are running
        assert len(pagerduty.notes_for(incident)) == 1, "evidence came before the kill"
        # Started now, while the time limit passes: it takes what is given back.
        second = start_worker(kill_env, log, "kill-second", concurrency=3)
        wait_for(
            lambda: give_back_held(
                redis_client, "kill-first", int(LIMITS["RESPONDER_TASK_TIME_LIMIT"])
            ),
            what="the killed worker's messages, past the time limit, to be given back",
        )
        wait_for(
            lambda: delivery(kill_receiver, delivery_id)["pipeline"] == "done",
            timeout=90,
            what="the fresh worker to finish the pipeline",
        )
    finally:
        health_server.delay.clear()
        for worker in (first, second):
            if worker is not None:
                stop_worker(worker)
    contents = [n["content"] for n in pagerduty.notes_for(incident)]
    assert sum(" evidence: " in c.splitlines()[0] for c in contents) == 1
    assert sum(c.startswith("[P1 (PagerDuty: P2)] SignalLatencyHigh: ") for c in contents) == 1
