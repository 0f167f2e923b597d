"""Celery settings for the responder, every one read from the environment.

Broker, result backend and queue name come from the responder's settings object
(`RESPONDER_REDIS_URL`, `RESPONDER_QUEUE`), applied by `tasks.celery_app.make_celery`.

The invariants that keep at-least-once delivery safe on Redis (Celery's "Redis caveats":
a message not acknowledged within the visibility timeout is delivered again): late acks,
re-queue on a lost worker, prefetch 1, and every time limit below the Redis visibility
timeout so a running task is never handed to a second worker.
"""

import os

visibility_timeout = int(os.environ.get("RESPONDER_VISIBILITY_TIMEOUT", "3600"))
broker_transport_options = {"visibility_timeout": visibility_timeout}
result_backend_transport_options = {"visibility_timeout": visibility_timeout}

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = int(os.environ.get("RESPONDER_TASK_TIME_LIMIT", "300"))
task_soft_time_limit = int(os.environ.get("RESPONDER_TASK_SOFT_TIME_LIMIT", "240"))
result_expires = int(os.environ.get("RESPONDER_RESULT_EXPIRES", "86400"))

# Nothing reads task results (no chords): storing them only filled Redis in a storm.
task_ignore_result = True
# A worker process is replaced once it grows past this (KiB): bounded memory in a storm.
worker_max_memory_per_child = int(os.environ.get("RESPONDER_WORKER_MAX_MEMORY_KB", "200000"))

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True
broker_connection_retry_on_startup = True
worker_hijack_root_logger = False

beat_schedule = {
    "heartbeat": {
        "task": "tasks.pipeline.heartbeat",
        "schedule": float(os.environ.get("RESPONDER_HEARTBEAT_SECONDS", "10")),
    },
    "prune-bundles": {"task": "tasks.pipeline.prune_bundles", "schedule": 3600.0},
    "sla-tick": {
        "task": "tasks.pipeline.sla_tick",
        "schedule": float(os.environ.get("RESPONDER_SLA_TICK_SECONDS", "5")),
    },
    # Work a dead worker held comes back; stalled deliveries are queued again (every 30 s).
    "recover": {
        "task": "tasks.pipeline.recover",
        "schedule": float(os.environ.get("RESPONDER_RECOVER_SECONDS", "5")),
    },
    # "N more alerts" notes of incidents whose runs deliveries joined; same cadence.
    "joined-tick": {
        "task": "tasks.pipeline.joined_tick",
        "schedule": float(os.environ.get("RESPONDER_SLA_TICK_SECONDS", "5")),
    },
}

if not task_soft_time_limit < task_time_limit < visibility_timeout:
    raise ValueError(
        "celeryconfig: need RESPONDER_TASK_SOFT_TIME_LIMIT < RESPONDER_TASK_TIME_LIMIT "
        "< RESPONDER_VISIBILITY_TIMEOUT, or late-acked tasks run twice"
    )
