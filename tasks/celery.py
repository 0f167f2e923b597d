"""Entry point for `celery -A tasks worker` and `celery -A tasks beat`."""

import os

from celery.signals import after_setup_logger

from tasks.celery_app import make_celery
from tasks.quiet_ticks import quiet_ticks
from tasks.settings import settings_from_env

app = make_celery(settings_from_env(os.environ))
# Worker and beat both configure logging through Celery: the ticks' routine lines go quiet then.
after_setup_logger.connect(quiet_ticks, weak=False)
