"""Celery task messages built ahead, so the receiver enqueues inside its one recording script.

Publishing through `send_task` costs a Redis client, a binding lookup and a round trip per
task; the receiver instead builds the very message Celery's Redis transport would LPUSH and
hands it to the script that records the delivery, so a 2xx means recorded *and* enqueued,
atomically. `tests/unit/test_enqueue.py` checks the message against one Celery publishes.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.utils.saferepr import saferepr
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps

# Strings whose repr Celery's saferepr writes the same way: short, no quotes or escapes.
_PLAIN = re.compile(r"[\w.:+-]{0,100}")

# The third part of a protocol 2 body: no callbacks, errbacks, chain or chord.
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@dataclass(frozen=True)
class TaskMessage:
    """A Celery task message ready to LPUSH onto `queue`, pushed only if `when` holds."""

    queue: str
    payload: str
    task_id: str
    when: str  # the dedup tag that must be fresh, e.g. "start" or "resolved"


class TaskMessages:
    """Build task messages the way Celery (protocol 2) and kombu's Redis transport do.

    Celery's own builder runs once per task name; each message after that is the template with
    its id, arguments and delivery tag filled in, which is most of the receiver's saving.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.queue = app.conf.task_default_queue
        self.serializer = app.conf.task_serializer
        self._templates: dict[str, dict[str, Any]] = {}

    def build(
        self, name: str, args: list[Any], when: str, task_id: str | None = None
    ) -> TaskMessage:
        """Return the message for task `name` with positional `args`."""
        task_id = task_id or str(uuid.uuid4())
        template = self._templates.get(name) or self._template(name)
        content_type, encoding, body = serialize((args, {}, EMBED), serializer=self.serializer)
        raw = body.encode(encoding) if isinstance(body, str) else body
        headers = {
            **template["headers"],
            "id": task_id,
            "root_id": task_id,
            "argsrepr": self._repr(args),
        }
        properties = {
            **template["properties"],
            "correlation_id": task_id,
            "reply_to": self.app.thread_oid,
            "delivery_tag": str(uuid.uuid4()),
        }
        payload = dumps(
            {
                "body": base64.b64encode(raw).decode(),
                "content-encoding": encoding,
                "content-type": content_type,
                "headers": headers,
                "properties": properties,
            }
        )
        return TaskMessage(self.queue, payload, task_id, when)

    def _repr(self, args: list[Any]) -> str:
        """Return Celery's `argsrepr`: plain repr is the same for ids and numbers."""
        if all(isinstance(a, int) or (isinstance(a, str) and _PLAIN.fullmatch(a)) for a in args):
            plain = repr(args)
            if len(plain) < 1000:  # below saferepr's cut
                return plain
        return saferepr(
            args, self.app.amqp.argsrepr_maxsize, maxlevels=self.app.conf.task_repr_maxlevels
        )

    def _template(self, name: str) -> dict[str, Any]:
        message = self.app.amqp.as_task_v2(
            "-", name, args=[], kwargs={}, ignore_result=None, reply_to=self.app.thread_oid
        )
        if message.body != ((), {}, EMBED):
            raise ValueError(f"Celery builds task bodies this module does not know: {message.body}")
        template = {
            "headers": message.headers,
            "properties": {
                **message.properties,
                "delivery_mode": 2,  # persistent, as kombu's Producer sets by default
                "delivery_info": {"exchange": "", "routing_key": self.queue},
                "priority": 0,
                "body_encoding": "base64",
            },
        }
        self._templates[name] = template
        return template
