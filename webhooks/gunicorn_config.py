"""Gunicorn hooks: `gunicorn -c python:webhooks.gunicorn_config 'webhooks:create_app()'`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from gevent.monkey import MonkeyPatchWarning
from prometheus_client import multiprocess

# gunicorn's master imports ssl itself (gunicorn.sock) before a gevent worker patches, so gevent
# warns in every worker. Harmless here: patching replaces the ssl module's classes in place, so
# redis-py's `ssl.SSLContext` (rediss://) is gevent's; the one direct import gevent names as left
# unpatched, redis.asyncio, the receiver never uses. Only this warning is silenced.
warnings.filterwarnings(
    "ignore",
    message="Monkey-patching ssl after ssl has already been imported",
    category=MonkeyPatchWarning,
)

# Set by `responder run` (tasks/cli): it says "listening" only once this file is written.
READY_FILE_VARIABLE = "RESPONDER_RUN_READY_FILE"

# The production server, the same for `responder run`, compose and the Dockerfile. gevent: a
# connection waiting on a slow client costs a greenlet, not one of the two workers (issue 24,
# finding 2; the measurements are in docs/hardening/intake.md). Bodies still get a deadline
# (RESPONDER_BODY_READ_SECONDS), so slow clients cannot pile up to worker_connections either.
workers = 2
worker_class = "gevent"
worker_connections = 1000
# A request here takes milliseconds and a body at most RESPONDER_BODY_READ_SECONDS (10 s by
# default): a stop need not wait gunicorn's default 30 s for a worker that has not finished.
graceful_timeout = 10
# Signed links are capabilities: the access and error logs mask every query value.
logger_class = "webhooks.access_log.QueryMaskingLogger"


def when_ready(server: Any) -> None:
    """Write the addresses gunicorn is bound to where `responder run` waits for them."""
    if path := os.environ.get(READY_FILE_VARIABLE):
        addresses = ", ".join(str(listener) for listener in server.LISTENERS)
        # Whole or not at all: the supervisor may read it at any moment.
        partial = Path(f"{path}.partial")
        partial.write_text(addresses)
        partial.replace(path)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the shared metrics directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
