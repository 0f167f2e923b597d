"""The worker side, in rooms by job. At the top: the Celery app (`celery`, `celery_app`), the
task names (`names`) and the thin tasks (`pipeline`), the response as a plain function
(`respond_flow`), the worker's signals (`worker_signals`), enqueueing (`enqueue`), the retry
decision (`retries`) and its engine (`dead_letter`), the lanes, recovery of dead workers'
tasks (`recovery`) and of stalled deliveries (`requeue`), the backlog, settings, the
per-process runtime, the queueing of Slack work (`slack_queue`) and the quieting of beat's
frequent ticks in the log (`quiet_ticks`).
Below: `store`, `pagerduty`, `evidence`, `notes`, `run`, `sla`, `cli`.

`celery -A tasks worker` finds the app in `tasks.celery`.
"""
