"""Celery task messages built ahead, so the receiver enqueues inside its one recording script.

Publishing through `send_task` costs a Redis client, a binding lookup and a round trip per
task; the receiver instead builds the very message Celery's Redis transport would LPUSH and
hands it to the script that records the delivery, so a 2xx means recorded *and* enqueued,
atomically. `tests/unit/test_enqueue.py` checks the message against one Celery publishes.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.utils.saferepr import saferepr
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps

# Strings whose repr Celery's saferepr writes the same way, and whose JSON needs no escapes:
# short, ASCII, no quotes.
_PLAIN = re.compile(r"[\w.:+-]{0,100}", re.ASCII)
# Text that a JSON string literal holds as it is: printable ASCII but `"` and `\`.
_JSON_LITERAL = re.compile(r"[ !#-\[\]-~]*")

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
        self._templates: dict[tuple[str, str], str] = {}  # format strings, by (task, queue)
        # The body after the arguments (`, {}, {...}]`), when the serializer is JSON.
        _, _, empty = serialize(([], {}, EMBED), serializer=self.serializer)
        self._body_tail = empty.removeprefix("[[]") if self.serializer == "json" else None

    def build(
        self,
        name: str,
        args: list[Any],
        when: str,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> TaskMessage:
        """Return the message for task `name` with positional `args`, for `queue` (default's)."""
        task_id = task_id or str(uuid.uuid4())
        queue = queue or self.queue
        template = self._templates.get((name, queue)) or self._template(name, queue)
        plain = _all_plain(args)
        values = {
            "id": _json_text(task_id),
            "argsrepr": _json_text(self._repr(args, plain)),
            "body": base64.b64encode(self._body(args, plain)).decode(),
            "delivery_tag": str(uuid.uuid4()),
            "reply_to": self.app.thread_oid,
        }
        payload = template.format_map(values)
        return TaskMessage(queue, payload, task_id, when)

    def _body(self, args: list[Any], plain: bool) -> bytes:
        """Return the serialized body: arguments, no kwargs, no callbacks."""
        if plain and self._body_tail is not None:
            # What the JSON serializer writes for ids and numbers, without its encoder.
            listed = ", ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
            return f"[[{listed}]{self._body_tail}".encode()
        _, encoding, body = serialize((args, {}, EMBED), serializer=self.serializer)
        return body.encode(encoding) if isinstance(body, str) else body

    def _repr(self, args: list[Any], plain: bool) -> str:
        """Return Celery's `argsrepr`: plain repr is the same for ids and numbers."""
        if plain:
            text = repr(args)
            if len(text) < 1000:  # below saferepr's cut
                return text
        return saferepr(
            args, self.app.amqp.argsrepr_maxsize, maxlevels=self.app.conf.task_repr_maxlevels
        )

    def _template(self, name: str, queue: str) -> str:
        """Return Celery's message for `name` on `queue` as a format string with slots."""
        message = self.app.amqp.as_task_v2(
            "-", name, args=[], kwargs={}, ignore_result=None, reply_to=self.app.thread_oid
        )
        if message.body != ((), {}, EMBED):
            raise ValueError(f"Celery builds task bodies this module does not know: {message.body}")
        content_type, encoding, _ = serialize(message.body, serializer=self.serializer)
        document = {
            "body": _slot("body"),
            "content-encoding": encoding,
            "content-type": content_type,
            "headers": {
                **message.headers,
                "id": _slot("id"),
                "root_id": _slot("id"),
                "argsrepr": _slot("argsrepr"),
            },
            "properties": {
                **message.properties,
                "correlation_id": _slot("id"),
                "reply_to": _slot("reply_to"),  # Celery's oid is per thread
                "delivery_mode": 2,  # persistent, as kombu's Producer sets by default
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": _slot("delivery_tag"),
            },
        }
        # Braces of the JSON text doubled, slot markers turned into format fields.
        text = dumps(document).replace("{", "{{").replace("}", "}}")
        template = self._templates[name, queue] = _SLOT.sub(r"{\1}", text)
        return template


# A marker no Celery field contains; the template's JSON text is split around these.
_SLOT = re.compile(r"@@responder-slot:(\w+)@@")


def _slot(name: str) -> str:
    """Return the marker of slot `name` in a template."""
    return f"@@responder-slot:{name}@@"


def _all_plain(args: list[Any]) -> bool:
    """Return True when every argument is an int or a short string needing no escapes."""
    # Exact types: subclasses (bool, enums) may print differently from how JSON writes them.
    return all(type(a) is int or (type(a) is str and _PLAIN.fullmatch(a)) for a in args)


def _json_text(text: str) -> str:
    """Return `text` as it appears inside a JSON string literal."""
    return text if _JSON_LITERAL.fullmatch(text) else json.dumps(text)[1:-1]
