"""Build the Celery app from `celeryconfig` and the responder's settings."""

from __future__ import annotations

from celery import Celery

from tasks.settings import Settings


def make_celery(settings: Settings) -> Celery:
    """Return a Celery app configured from `celeryconfig`, with broker and backend from settings."""
    app = Celery("responder")
    app.config_from_object("celeryconfig")
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        task_default_queue=settings.queue,
    )
    app.conf.responder_settings = settings
    # Import for side effect: registers the pipeline's shared tasks with this app.
    app.conf.imports = ("tasks.pipeline",)
    app.set_default()
    return app
