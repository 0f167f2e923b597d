"""Priority lanes: urgent work (P0/P1) is taken before routine work, whatever waits ahead."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import redis

from tasks.celery_app import make_celery
from tasks.enqueue import TaskMessages
from tasks.lanes import urgent_queue
from tasks.names import RESPOND
from tasks.settings import Settings
from tests.support import wait_for
from tests.support.workers import start_worker, stop_worker

QUEUE = "responder-lanes-test"


def test_p0s_enqueued_behind_500_p3_tasks_run_first(
    settings: Settings, responder_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE, urgent_queue(QUEUE))
    messages = TaskMessages(make_celery(replace(settings, queue=QUEUE)))
    routine = [messages.build(RESPOND, [f"p3-{n}", 1], "start") for n in range(500)]
    # Two: taking turns between queues (kombu's default) would run a P3 between them.
    urgent = [
        messages.build(RESPOND, [f"p0-{n}", 1], "start", None, urgent_queue(QUEUE))
        for n in range(2)
    ]
    with client.pipeline() as pipe:
        for message in routine + urgent:  # the P0s last in, behind all of them
            pipe.lpush(message.queue, message.payload)
        pipe.execute()
    log = tmp_path / "worker.log"
    worker = start_worker({**responder_env, "RESPONDER_QUEUE": QUEUE}, log, "lanes")
    try:
        wait_for(lambda: len(received(log)) >= 4, what="the worker to take tasks")
    finally:
        stop_worker(worker)
        client.delete(QUEUE, urgent_queue(QUEUE))
    assert received(log)[:2] == [message.task_id for message in urgent]


def received(log: Path) -> list[str]:
    """Return the ids of the tasks the worker received, in order."""
    return re.findall(r"Task tasks\.pipeline\.respond\[([0-9a-f-]+)\] received", log.read_text())
