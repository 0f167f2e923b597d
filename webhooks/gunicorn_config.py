"""Gunicorn hooks: `gunicorn -c python:webhooks.gunicorn_config 'webhooks:create_app()'`."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the shared metrics directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
