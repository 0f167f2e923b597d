"""Entry point for `celery -A tasks worker` and `celery -A tasks beat`."""

import os

from celery.signals import after_setup_logger

from tasks.celery_app import make_celery
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
