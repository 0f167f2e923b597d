"""Entry point for `celery -A tasks worker` and `celery -A tasks beat`."""

import os

from tasks.celery_app import make_celery
from tasks.settings import settings_from_env

app = make_celery(settings_from_env(os.environ))
