"""Build the Celery app from `celeryconfig` and the responder's settings."""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps
from kombu import Queue

from tasks import recovery
from tasks.broker_guard import guard_detached_channels
from tasks.lanes import actions_queue, notify_queue, urgent_queue
from tasks.names import ACT, ACTION_ALREADY, ACTION_REFUSED, APPROVE_IF_ASSIGNED
from tasks.patient_task import PatientTask
from tasks.runtime import Runtime, SendTask
from tasks.settings import Settings
from tasks.store.redis_client import celery_transport_options, is_sentinel_url
from tasks.store.sentinel_pools import follow_failovers_together

URGENT_HOUSEKEEPING = (
    "tasks.pipeline.sla_tick",
    "tasks.pipeline.joined_tick",
    "tasks.pipeline.recover",
    "tasks.pipeline.heartbeat",
    "tasks.pipeline.sla_audit",
    "tasks.pipeline.watchdog_check",
)


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Return what beat runs, and how often."""
    return {
        "heartbeat": {"task": "tasks.pipeline.heartbeat", "schedule": settings.heartbeat_seconds},
        "prune-bundles": {"task": "tasks.pipeline.prune_bundles", "schedule": 3600.0},
        "sla-tick": {"task": "tasks.pipeline.sla_tick", "schedule": settings.sla_tick_seconds},
        # Work a dead worker held comes back; stalled deliveries are queued again (every 30 s).
        "recover": {"task": "tasks.pipeline.recover", "schedule": settings.recover_seconds},
        # "N more alerts" notes of incidents whose runs deliveries joined; the SLA's cadence.
        # Deadlines that came due and whose action never ran are queued again.
        "sla-audit": {"task": "tasks.pipeline.sla_audit", "schedule": settings.sla_audit_seconds},
        # Alertmanager's always-firing Watchdog stopped arriving: page once (policy watchdog).
        "watchdog-check": {
            "task": "tasks.pipeline.watchdog_check",
            "schedule": settings.watchdog_check_seconds,
        },
        "joined-tick": {
            "task": "tasks.pipeline.joined_tick",
            "schedule": settings.sla_tick_seconds,
        },
    }


class ForgetHeldOnReconnect(bootsteps.StartStopStep):  # type: ignore[misc]
    """On each broker connection, the heartbeat stops claiming messages of the last one.

    A consumer step's start() runs on every (re)connect, before the event loop delivers a
    message on the new connection: only messages of the lost connection are forgotten.
    """

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, consumer: Any) -> None:
        """Forget the held messages (none on the first connection)."""
        recovery.forget_held()


def make_celery(settings: Settings) -> Celery:
    """Return a Celery app configured from `celeryconfig`, with broker and backend from settings."""
    guard_detached_channels()  # a worker must not exit on a broker restart (see the module)
    if is_sentinel_url(settings.redis_url):
        # kombu's pools and the state client's leave a cut primary together (see the module)
        follow_failovers_together()
    # Every task (shared ones included) is a PatientTask: it rides out a Redis restart.
    app = Celery("responder", task_cls=PatientTask)
    app.config_from_object("celeryconfig")
    urgent = urgent_queue(settings.queue)
    actions = actions_queue(settings.queue)
    notify_urgent, notify = notify_queue(settings.queue, "P0"), notify_queue(settings.queue, "P3")
    # kombu's Sentinel transport (and Celery's Sentinel result backend) ask the Sentinels for
    # this master on every connection: the broker follows a failover by itself.
    sentinel = celery_transport_options(
        settings.redis_url,
        settings.redis_sentinel_master,
        settings.redis_sentinel_password.reveal(),
    )
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        task_default_queue=settings.queue,
        # A worker started without -Q consumes every queue, the urgent one first: with the
        # "priority" order kombu's Redis transport asks BRPOP for the urgent queue before
        # the routine one every time, instead of taking turns (its default round robin).
        task_queues=(
            # Approved actions first: a person waits on them (stop trading). The urgent worker
            # reads this queue too, so a storm of routine work never stands before them.
            Queue(actions, routing_key=actions),
            Queue(urgent, routing_key=urgent),
            # Slack and e-mail: never read by the urgent worker (a hung server would hold its
            # slots), read by this one before routine work, P0/P1's first.
            *(Queue(q, routing_key=q) for q in (notify_urgent, notify)),
            Queue(settings.queue, routing_key=settings.queue),
        ),
        # Beat's own ticks must not wait behind a storm of routine work in the routine queue.
        task_routes={
            **{name: {"queue": urgent} for name in URGENT_HOUSEKEEPING},
            ACT: {"queue": actions},
            ACTION_REFUSED: {"queue": actions},
            APPROVE_IF_ASSIGNED: {"queue": actions},
            ACTION_ALREADY: {"queue": actions},
        },
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            "queue_order_strategy": "priority",
            **sentinel,
        },
        result_backend_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            **sentinel,
        },
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        result_expires=settings.result_expires_seconds,
        # A worker process is replaced once it grows past this (KiB): bounded memory in a storm.
        worker_max_memory_per_child=settings.worker_max_memory_kb,
        beat_schedule=beat_schedule(settings),
        # Every host may run beat; the one holding the beat lease sends (tasks/beat.py).
        beat_scheduler="tasks.beat:LeasedScheduler",
    )
    app.steps["consumer"].add(ForgetHeldOnReconnect)
    app.conf.responder_settings = settings
    # Import for side effect: registers the pipeline's shared tasks with this app.
    app.conf.imports = ("tasks.pipeline",)
    app.set_default()
    return app


def sender_of(app: Celery) -> SendTask:
    """Return a sender of tasks by name through `app`: what a Runtime queues work with."""

    def send(name: str, args: list[Any], queue: str) -> None:
        app.send_task(name, args=args, queue=queue)

    return send


def runtime_of(app: Celery) -> Runtime:
    """Return the process's Runtime for `app`, built with its sender on first use."""
    runtime = getattr(app, "_responder_runtime", None)
    if runtime is None:
        runtime = Runtime(app.conf.responder_settings, send_task=sender_of(app))
        app._responder_runtime = runtime  # type: ignore[attr-defined]
    return runtime
