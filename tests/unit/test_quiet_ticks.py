"""Beat's frequent ticks stay out of an INFO log; their failures and real work do not."""

from __future__ import annotations

import logging

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_RETRY, LOG_SUCCESS

from tasks.quiet_ticks import BEAT_SENDING, QuietTicks

TICK = "tasks.pipeline.sla_tick"
WORK = "tasks.pipeline.sla_action"


def record(logger: str, level: int, msg: str, args: object) -> logging.LogRecord:
    """Return a record as Celery's logger would make it."""
    made = logging.LogRecord(logger, level, __file__, 1, msg, None, None)
    made.args = args  # a dict for the tracer's lines, a tuple for beat's
    return made


def task_args(name: str) -> dict[str, object]:
    return {"name": name, "id": "0c1d", "runtime": 0.01, "return_value": "0"}


@pytest.fixture
def info_logging():
    """Log Celery's loggers at INFO, as `responder run` does."""
    loggers = [logging.getLogger(n) for n in ("celery.app.trace", "celery.beat")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.parametrize(
    ("logger", "level", "msg", "args", "kept"),
    [
        ("celery.beat", logging.INFO, BEAT_SENDING, ("sla-tick", TICK), False),
        ("celery.app.trace", logging.INFO, LOG_RECEIVED, task_args(TICK), False),
        ("celery.app.trace", logging.INFO, LOG_SUCCESS, task_args(TICK), False),
        # The work a tick starts is logged as before.
        ("celery.app.trace", logging.INFO, LOG_SUCCESS, task_args(WORK), True),
        ("celery.beat", logging.INFO, BEAT_SENDING, ("prune-bundles", "prune_bundles"), True),
        # A tick that retries or fails is worth seeing.
        ("celery.app.trace", logging.INFO, LOG_RETRY, task_args(TICK), True),
        ("celery.app.trace", logging.ERROR, LOG_SUCCESS, task_args(TICK), True),
    ],
    ids=["sent", "received", "succeeded", "real-work", "hourly", "retry", "error"],
)
def test_only_the_routine_lines_of_the_frequent_ticks_leave_an_info_log(
    info_logging, logger: str, level: int, msg: str, args: object, kept: bool
) -> None:
    assert QuietTicks([TICK]).filter(record(logger, level, msg, args)) is kept


def test_at_debug_a_ticks_lines_are_kept_as_debug(info_logging) -> None:
    logging.getLogger("celery.app.trace").setLevel(logging.DEBUG)
    line = record("celery.app.trace", logging.INFO, LOG_SUCCESS, task_args(TICK))
    assert QuietTicks([TICK]).filter(line) is True
    assert line.levelname == "DEBUG"
