"""Celery task messages built ahead, so the receiver enqueues inside its one recording script.

Publishing through `send_task` costs a Redis client, a binding lookup and a round trip per
task; the receiver instead builds the very message Celery's Redis transport would LPUSH and
hands it to the script that records the delivery, so a 2xx means recorded *and* enqueued,
atomically. `tests/unit/test_enqueue.py` checks the message against one Celery publishes.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps


@dataclass(frozen=True)
class TaskMessage:
    """A Celery task message ready to LPUSH onto `queue`, pushed only if `when` holds."""

    queue: str
    payload: str
    task_id: str
    when: str  # the dedup tag that must be fresh, e.g. "start" or "resolved"


class TaskMessages:
    """Build task messages the way Celery (protocol 2) and kombu's Redis transport do."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.queue = app.conf.task_default_queue
        self.serializer = app.conf.task_serializer

    def build(
        self, name: str, args: list[Any], when: str, task_id: str | None = None
    ) -> TaskMessage:
        """Return the message for task `name` with positional `args`."""
        task_id = task_id or str(uuid.uuid4())
        message = self.app.amqp.as_task_v2(
            task_id, name, args=args, kwargs={}, ignore_result=None, reply_to=self.app.thread_oid
        )
        content_type, encoding, body = serialize(message.body, serializer=self.serializer)
        raw = body.encode(encoding) if isinstance(body, str) else body
        properties = {
            **message.properties,
            "delivery_mode": 2,  # persistent, as kombu's Producer sets by default
            "delivery_info": {"exchange": "", "routing_key": self.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        payload = dumps(
            {
                "body": base64.b64encode(raw).decode(),
                "content-encoding": encoding,
                "content-type": content_type,
                "headers": message.headers,
                "properties": properties,
            }
        )
        return TaskMessage(self.queue, payload, task_id, when)
