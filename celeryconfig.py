"""Celery's static settings for the responder: the ones no operator needs to change.

Everything an operator sets (broker, queue, the visibility timeout, time limits, result
expiry, beat's periods, the worker memory cap) comes from the one settings object
(`tasks.settings`), applied by `tasks.celery_app.make_celery`.

The invariants that keep at-least-once delivery safe on Redis (Celery's "Redis caveats":
a message not acknowledged within the visibility timeout is delivered again): late acks,
re-queue on a lost worker, prefetch 1, and every time limit below the Redis visibility
timeout (the settings refuse anything else) so a running task is never handed to a second
worker.
"""

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Nothing reads task results (no chords): storing them only filled Redis in a storm.
task_ignore_result = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True
broker_connection_retry_on_startup = True
worker_hijack_root_logger = False
