"""What the receiver's views share: settings, the runtime and the Celery app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from tasks.enqueue import TaskMessages
from tasks.runtime import Runtime
from tasks.settings import Settings
from webhooks.metrics import ReceiverMetrics

EXTENSION = "eafix_responder"


@dataclass(frozen=True)
class Receiver:
    """The receiver's wiring, stored in `app.extensions`."""

    settings: Settings
    runtime: Runtime
    metrics: ReceiverMetrics
    messages: TaskMessages


def current_receiver() -> Receiver:
    """Return the wiring of the app handling the current request."""
    return current_app.extensions[EXTENSION]
