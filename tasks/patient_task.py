"""The Celery task class of the responder: a task that loses Redis waits for it and retries.

During a Redis restart or a Sentinel failover a task meets `redis.ConnectionError` (or a
timeout) on its state. Failing would leave its delivery to the stalled-run lease, minutes
later (issue 27: four `gather` tasks did so in one restart). Every task is safe to run again
(once-markers guard each effect), so it waits until Redis answers, then retries itself after
a short backoff. The retry's message is published only once Redis answered: publishing into
a Redis that is still down would fail the task all the same.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task

from tasks.retries import redis_backoff
from tasks.runtime import open_redis

log = logging.getLogger(__name__)

LOST_REDIS = (redis.ConnectionError, redis.TimeoutError)
WAIT_FOR_REDIS_SECONDS = 30.0  # then retry anyway: kombu's publish has its own retries


class PatientTask(Task):  # type: ignore[misc]  # Celery's Task is untyped
    """A task that retries after a short backoff when it loses its Redis connection."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request_stack.top is None:  # called as a function: no message to retry
            return super().__call__(*args, **kwargs)
        # A worker (or apply) has pushed the message's request: run the body under it, as
        # Celery's own tracer does for a task class with its own __call__.
        try:
            return self.run(*args, **kwargs)
        except LOST_REDIS as exc:
            attempt = int(self.request.retries or 0) + 1
            delay = redis_backoff(attempt)
            log.warning(
                "%s lost Redis (%s); retry %d in %.1f s", self.name, type(exc).__name__,
                attempt, delay,
            )  # fmt: skip
            self._wait_for_redis()
            # Within the task's max_retries: unbounded for the pipeline's tasks (None), three
            # for beat's ticks, whose next tick comes anyway.
            raise self.retry(exc=exc, countdown=delay) from None

    def _wait_for_redis(self) -> None:
        """Return once Redis answers PING, or after WAIT_FOR_REDIS_SECONDS."""
        settings = getattr(self.app.conf, "responder_settings", None)
        if settings is None or self.request.is_eager:
            return
        client = open_redis(settings, socket_timeout=1, socket_connect_timeout=0.5)
        deadline = time.monotonic() + WAIT_FOR_REDIS_SECONDS
        pause = 0.1
        try:
            while time.monotonic() < deadline:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)
        finally:
            client.close()
