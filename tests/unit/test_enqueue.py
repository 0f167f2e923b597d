"""The receiver's prebuilt task message is the one Celery itself publishes."""

from __future__ import annotations

import json
from dataclasses import replace

import redis

from tasks.celery_app import make_celery
from tasks.enqueue import TaskMessages
from tasks.settings import Settings

QUEUE = "responder-enqueue-test"


def test_prebuilt_message_equals_what_celery_publishes(settings: Settings, redis_url: str) -> None:
    app = make_celery(replace(settings, queue=QUEUE))
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    try:
        app.send_task("tasks.pipeline.respond", args=["d-1", 1], task_id="fixed-id")
        [published] = client.lrange(QUEUE, 0, -1)
    finally:
        client.delete(QUEUE)
    ours = TaskMessages(app).build("tasks.pipeline.respond", ["d-1", 1], "start", "fixed-id")
    expected, built = json.loads(published), json.loads(ours.payload)
    # A fresh delivery tag per message, by design.
    for message in (expected, built):
        message["properties"].pop("delivery_tag")
    assert built == expected
    assert ours.queue == QUEUE
