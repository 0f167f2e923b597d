"""Entry point for `celery -A tasks worker` and `celery -A tasks beat`."""

import logging
import os

from celery.signals import after_setup_logger, after_setup_task_logger, celeryd_init

from tasks.celery_app import make_celery
from tasks.log_format import JSON, json_lines_after_setup, quiet_worker, use_json_lines
from tasks.quiet_ticks import quiet_ticks
from tasks.settings import SettingsError, settings_from_env

try:
    settings = settings_from_env(os.environ)
except SettingsError as exc:  # the promised sentence, not a traceback, and no worker or beat
    raise SystemExit(f"Error: {exc}") from None
app = make_celery(settings)
if not settings.log_ticks:
    # Worker and beat both set up logging through Celery: the ticks' routine lines go quiet.
    after_setup_logger.connect(quiet_ticks, weak=False)
if settings.log_format == JSON:
    # From here on, before Celery's own set-up: the worker warns (and may fail) before it.
    use_json_lines(logging.getLogger())
    # Celery sets up the root and the task logger with its own text formatter, then signals.
    after_setup_logger.connect(json_lines_after_setup, weak=False)
    after_setup_task_logger.connect(json_lines_after_setup, weak=False)
    celeryd_init.connect(quiet_worker, weak=False)
