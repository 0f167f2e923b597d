"""The receiver's prebuilt task message is the one Celery itself publishes."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from enum import IntEnum, StrEnum

import redis

from tasks.celery_app import make_celery
from tasks.enqueue import TaskMessages
from tasks.lanes import urgent_queue
from tasks.settings import Settings

QUEUE = "responder-enqueue-test"


class Kind(StrEnum):
    ALERT = "alert"


class Level(IntEnum):
    HIGH = 2


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


def test_a_message_for_the_urgent_lane_equals_what_celery_publishes_there(
    settings: Settings, redis_url: str
) -> None:
    app = make_celery(replace(settings, queue=QUEUE))
    urgent = urgent_queue(QUEUE)
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE, urgent)
    try:
        app.send_task("tasks.pipeline.respond", args=["d-1", 1], task_id="fixed", queue=urgent)
        [published] = client.lrange(urgent, 0, -1)
        assert client.llen(QUEUE) == 0
    finally:
        client.delete(QUEUE, urgent)
    ours = TaskMessages(app).build("tasks.pipeline.respond", ["d-1", 1], "start", "fixed", urgent)
    expected, built = json.loads(published), json.loads(ours.payload)
    for message in (expected, built):
        message["properties"].pop("delivery_tag")
    assert built == expected
    assert ours.queue == urgent


def test_every_message_from_the_template_equals_celerys(settings: Settings, redis_url: str) -> None:
    app = make_celery(replace(settings, queue=QUEUE))
    client = redis.Redis.from_url(redis_url)
    messages = TaskMessages(app)
    cases = [
        ("tasks.pipeline.respond", ["20261127T120000Z-3f9a1c2b", 2]),
        ("tasks.pipeline.note_resolved", ["20261127T120000Z-00000000"]),
        ("tasks.pipeline.close_incident", ["P" + "X" * 2000]),  # long: Celery's saferepr cuts it
        ("tasks.pipeline.respond", ["d-again", 1]),
        ("tasks.pipeline.close_incident", ["it's \\ \n odd", "2026-11-27T12:00:00+00:00"]),
        ("tasks.pipeline.note_resolved", ["x" * 99] * 11),  # over Celery's 1024 in total
        ("tasks.pipeline.respond", ["d-flags", True, -3]),  # JSON writes true, Python True
        ("tasks.pipeline.respond", [Kind.ALERT, Level.HIGH]),  # enums print unlike their values
    ]
    for n, (name, args) in enumerate(cases):
        client.delete(QUEUE)
        try:
            app.send_task(name, args=args, task_id=f"id-{n}")
            [published] = client.lrange(QUEUE, 0, -1)
        finally:
            client.delete(QUEUE)
        expected = json.loads(published)
        built = json.loads(messages.build(name, args, "start", f"id-{n}").payload)
        for message in (expected, built):
            message["properties"].pop("delivery_tag")
        assert built == expected, name


def test_reply_to_is_the_building_threads_own(settings: Settings) -> None:
    # Celery's reply_to is per thread; the template must not freeze the first thread's.
    app = make_celery(replace(settings, queue=QUEUE))
    messages = TaskMessages(app)
    here = json.loads(messages.build("tasks.pipeline.respond", ["d-1", 1], "start").payload)
    seen: dict[str, str] = {}

    def build_elsewhere() -> None:
        built = messages.build("tasks.pipeline.respond", ["d-2", 1], "start").payload
        seen["reply_to"], seen["oid"] = json.loads(built)["properties"]["reply_to"], app.thread_oid

    thread = threading.Thread(target=build_elsewhere)
    thread.start()
    thread.join()
    assert here["properties"]["reply_to"] == app.thread_oid
    assert seen["reply_to"] == seen["oid"] != app.thread_oid
