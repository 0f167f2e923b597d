"""The worker's signal handlers: checks before it starts, its heartbeat, each task's lane.

Connected when this module is imported, which `tasks.pipeline` does: every worker loads them
with its tasks.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery.signals import task_prerun, task_received, worker_init, worker_ready

from collectors import plots
from tasks import recovery
from tasks.celery_app import runtime_of
from tasks.lanes import current_lane, lane_of_queue
from tasks.notes.voice import TemplateProblem
from tasks.runtime import open_redis
from tasks.settings import Settings
from tasks.store.deliveries import current_attempt
from tasks.store.sentinel_pools import check_master

log = logging.getLogger(__name__)

_held: recovery.HeldMessages | None = None  # this worker process's heartbeat


def _settings_of(sender: Any) -> Settings | None:
    """Return the responder's settings of the worker that sent a signal (None: not ours)."""
    return getattr(getattr(getattr(sender, "app", None), "conf", None), "responder_settings", None)


@worker_init.connect
def _check_note_templates(sender: Any = None, **_: Any) -> None:
    """Refuse to start with a note template that cannot render: fail now, not at 3 a.m."""
    if _settings_of(sender) is None:
        return
    try:
        runtime_of(sender.app).voice  # noqa: B018 - checks every template as it loads them
    except TemplateProblem as exc:
        log.critical("the worker cannot start: note templates: %s", exc)
        raise SystemExit(2) from None  # an Exception would be logged by Celery, and ignored


@worker_init.connect
def _warm_plots(sender: Any = None, **_: Any) -> None:
    """Load the plotting library before the pool forks: no first alert waits for it."""
    settings = _settings_of(sender)
    if settings is not None and not settings.warm_plots:
        return
    try:
        plots.warm()
    except Exception:  # a plot that cannot be drawn is the collector's to report, not a start
        log.exception("plots could not be warmed up; the first plot will load matplotlib")


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Publish which messages this worker holds, every few seconds, while it lives."""
    global _held
    settings = _settings_of(sender)
    if settings is None:
        return
    client = open_redis(settings, socket_timeout=2, socket_connect_timeout=2)
    _held = recovery.HeldMessages(client, getattr(sender, "hostname", None) or socket.gethostname())
    recovery.hold(_held)
    _held.start()


@task_received.connect
def _note_received(request: Any = None, **_: Any) -> None:
    """Count a message this worker took as held until its task is acknowledged."""
    message = getattr(request, "message", None)
    if _held is not None and message is not None and message.delivery_tag:
        _held.received(str(message.delivery_tag))


# No stop on `worker_shutting_down`: a warm shutdown still runs its tasks to the end, and a
# silent heartbeat would have `recover` hand them to another worker meanwhile. The daemon
# thread ends with the process; kombu gives back what is left at shutdown.


@task_prerun.connect
def _enter_lane(task: Any = None, **_: Any) -> None:
    """Draw on the budget of the lane the task came from (its queue)."""
    settings = _settings_of(task)
    if task is not None:
        current_attempt.set(task.request.id or "-")  # whose attempt a pending effect is
    if settings is not None:
        routing_key = (task.request.delivery_info or {}).get("routing_key")
        current_lane.set(lane_of_queue(settings.queue, routing_key))


@task_prerun.connect
def _follow_the_primary(task: Any = None, **_: Any) -> None:
    """Leave a primary the Sentinels replaced before the task's first command (at most every
    second; see tasks/store/sentinel_pools.py)."""
    if _settings_of(task) is not None:
        check_master(runtime_of(task.app).redis)
