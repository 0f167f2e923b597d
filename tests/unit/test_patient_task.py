"""A task that loses its Redis connection retries instead of failing (tasks/patient_task.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tasks.patient_task import PatientTask


@pytest.fixture
def eager_app() -> Iterator[Celery]:
    app = Celery("patient-test", task_cls=PatientTask, set_as_current=False)
    app.conf.update(task_always_eager=True)
    yield app


@pytest.mark.parametrize(
    "lost", [redis.ConnectionError("restarting"), redis.TimeoutError("failing over")]
)
def test_a_task_that_loses_redis_retries_and_then_succeeds(
    eager_app: Celery, lost: redis.RedisError
) -> None:
    attempts: list[int] = []

    # shared=False: a shared task would be added to every app made later in this process (the
    # celeryconfig test's), and the two parametrized copies then clash by name.
    @eager_app.task(bind=True, max_retries=None, shared=False)  # as the pipeline's tasks
    def flaky(self: PatientTask) -> str:
        attempts.append(self.request.retries)
        if len(attempts) < 4:
            raise lost
        return "done"

    assert flaky.apply().get() == "done"
    assert attempts == [0, 1, 2, 3]


def test_a_tick_that_keeps_losing_redis_gives_up_after_its_retries(eager_app: Celery) -> None:
    attempts: list[int] = []

    @eager_app.task(bind=True, shared=False)  # Celery's default: three retries, as beat's ticks
    def tick(self: PatientTask) -> str:
        attempts.append(self.request.retries)
        raise redis.ConnectionError("still down")

    with pytest.raises(redis.ConnectionError, match="still down"):
        tick.apply().get()
    assert attempts == [0, 1, 2, 3]


def test_a_task_that_fails_for_another_reason_is_not_retried(eager_app: Celery) -> None:
    attempts: list[int] = []

    @eager_app.task(bind=True, shared=False)
    def broken(self: PatientTask) -> str:
        attempts.append(self.request.retries)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        broken.apply().get()
    assert attempts == [0]
