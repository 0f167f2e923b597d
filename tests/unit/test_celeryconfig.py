"""The Celery invariants that keep at-least-once delivery safe on Redis."""

import importlib

import pytest

import celeryconfig


def test_late_acks_requeue_on_lost_worker_and_prefetch_one() -> None:
    assert celeryconfig.task_acks_late is True
    assert celeryconfig.task_reject_on_worker_lost is True
    assert celeryconfig.worker_prefetch_multiplier == 1


def test_time_limits_stay_below_the_visibility_timeout() -> None:
    vt = celeryconfig.broker_transport_options["visibility_timeout"]
    assert celeryconfig.result_backend_transport_options["visibility_timeout"] == vt
    assert celeryconfig.task_soft_time_limit < celeryconfig.task_time_limit < vt
    assert celeryconfig.result_expires > 0


def test_a_time_limit_above_the_visibility_timeout_refuses_to_load(monkeypatch) -> None:
    monkeypatch.setenv("RESPONDER_TASK_TIME_LIMIT", "7200")
    with pytest.raises(ValueError, match="VISIBILITY_TIMEOUT"):
        importlib.reload(celeryconfig)
    monkeypatch.delenv("RESPONDER_TASK_TIME_LIMIT")
    importlib.reload(celeryconfig)


def test_no_pipeline_task_overrides_the_time_limits() -> None:
    from tasks.celery_app import make_celery
    from tasks.settings import Settings

    app = make_celery(Settings())
    import tasks.pipeline  # noqa: F401 - registers the tasks

    for name, task in app.tasks.items():
        if name.startswith("tasks.pipeline."):
            # Each inherits the global limits, which stay below the visibility timeout.
            assert task.time_limit == celeryconfig.task_time_limit, name
            assert task.soft_time_limit == celeryconfig.task_soft_time_limit, name
