"""Two lanes of work: urgent (P0/P1) and routine (P2/P3), each with its own Celery queue.

Urgent work is consumed before routine work, has worker capacity of its own, and may use all
of PagerDuty's request budget; routine work only the policy's share of it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

URGENT_PRIORITIES = frozenset({"P0", "P1"})


class Lane(StrEnum):
    """Which queue a piece of work waits on, and which share of the budget it may use."""

    URGENT = "urgent"  # P0/P1: its own queue and workers, the whole budget
    ROUTINE = "routine"  # P2/P3 and housekeeping: up to the policy's share


# The lane of the work this thread is doing; workers set it from the queue a task came from.
# Outside a worker (the CLI, an operator) calls are urgent: a person is waiting on them.
current_lane: contextvars.ContextVar[Lane] = contextvars.ContextVar(
    "current_lane", default=Lane.URGENT
)


# True while this thread makes the writes of a first response (the lookup and the first note):
# within the routine lane they may use the whole share, follow-ups (priority, evidence) less.
first_response: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "first_response", default=False
)


@contextmanager
def writing_first_response() -> Iterator[None]:
    """Mark the writes inside as a first response's (see `first_response`)."""
    token = first_response.set(True)
    try:
        yield
    finally:
        first_response.reset(token)


def lane_for(priority: str | None) -> Lane:
    """Return the lane of work for an incident of `priority` (P0..P3)."""
    return Lane.URGENT if priority in URGENT_PRIORITIES else Lane.ROUTINE


def urgent_queue(queue: str) -> str:
    """Return the name of the urgent queue that goes with routine queue `queue`."""
    return f"{queue}-urgent"


def actions_queue(queue: str) -> str:
    """Return the queue of approved runbook actions that goes with routine queue `queue`."""
    return f"{queue}-actions"


def notify_queue(queue: str, priority: str | None) -> str:
    """Return the queue of Slack and e-mail sends for work of `priority`.

    Never one an urgent worker reads: a hung chat or mail server holds a slot for its whole
    timeout, and the urgent lane's few slots are for first notes. The P0/P1 one is read first.
    """
    return f"{queue}-notify-urgent" if lane_for(priority) is Lane.URGENT else f"{queue}-notify"


# SLA deadlines whose first outside call is an e-mail (trading desk, management): they go on
# the notify queues, not the urgent lane (tasks/notify/desk.py, tasks/notify/management.py).
MAIL_FIRST_DEADLINES = frozenset({"desk_alert", "desk_summary", "notify_management"})


def deadline_queue(queue: str, kind: str, priority: str | None) -> str:
    """Return the queue an SLA deadline of `kind` and `priority` is acted on from."""
    if kind in MAIL_FIRST_DEADLINES:
        return notify_queue(queue, priority)
    return queue_for(queue, priority)


def urgent_worker_queues(queue: str) -> str:
    """Return the `--queues` of an urgent worker: approved actions and the urgent lane only."""
    return f"{actions_queue(queue)},{urgent_queue(queue)}"


def queue_for(queue: str, priority: str | None) -> str:
    """Return the Celery queue for work of `priority`, given the routine queue's name."""
    return urgent_queue(queue) if lane_for(priority) is Lane.URGENT else queue


def lane_of_queue(queue: str, routing_key: str | None) -> Lane:
    """Return the lane of a task that came from queue `routing_key`."""
    urgent = (urgent_queue(queue), notify_queue(queue, "P0"))
    return Lane.URGENT if routing_key in urgent else Lane.ROUTINE
