"""The Celery invariants that keep at-least-once delivery safe on Redis."""

import pytest

import celeryconfig
from tasks.celery_app import make_celery
from tasks.settings import Settings, SettingsError, settings_from_env


def test_late_acks_requeue_on_lost_worker_and_prefetch_one() -> None:
    assert celeryconfig.task_acks_late is True
    assert celeryconfig.task_reject_on_worker_lost is True
    assert celeryconfig.worker_prefetch_multiplier == 1


def test_time_limits_stay_below_the_visibility_timeout() -> None:
    conf = make_celery(Settings()).conf
    vt = conf.broker_transport_options["visibility_timeout"]
    assert conf.result_backend_transport_options["visibility_timeout"] == vt
    assert conf.task_soft_time_limit < conf.task_time_limit < vt
    assert conf.result_expires > 0


def test_the_settings_object_sets_what_operators_change() -> None:
    settings = settings_from_env(
        {"RESPONDER_VISIBILITY_TIMEOUT": "600", "RESPONDER_SLA_TICK_SECONDS": "2"}
    )
    conf = make_celery(settings).conf
    assert conf.broker_transport_options["visibility_timeout"] == 600
    assert conf.beat_schedule["sla-tick"]["schedule"] == 2.0


def test_a_time_limit_above_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(SettingsError, match="RESPONDER_VISIBILITY_TIMEOUT, got 240 < 7200 < 3600"):
        settings_from_env({"RESPONDER_TASK_TIME_LIMIT": "7200"})


def test_no_pipeline_task_overrides_the_time_limits() -> None:
    app = make_celery(Settings())
    import tasks.pipeline  # noqa: F401 - registers the tasks

    for name, task in app.tasks.items():
        if name.startswith("tasks.pipeline."):
            # Each inherits the global limits, which stay below the visibility timeout.
            assert task.time_limit == app.conf.task_time_limit, name
            assert task.soft_time_limit == app.conf.task_soft_time_limit, name
