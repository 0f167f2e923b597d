"""Keep beat's frequent internal ticks out of an INFO log, without hiding real work.

Beat sends the SLA tick, the joined-alerts tick, recovery and the heartbeat every few seconds;
at INFO, Celery logs three lines for each (sent, received, succeeded), which buried everything
else in the foreground of `responder run`. Only those three routine lines of those tasks are
lowered to DEBUG: their failures and retries, and every task a tick starts (an SLA action, a
note), are logged as before. RESPONDER_LOG_TICKS=1 (or --loglevel DEBUG) shows them again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from tasks.celery_app import URGENT_HOUSEKEEPING

BEAT_SENDING = "Scheduler: Sending due task %s (%s)"  # celery.beat.Scheduler.apply_entry
ROUTINE_LINES = frozenset({LOG_RECEIVED, LOG_SUCCESS, BEAT_SENDING})
# The loggers those lines come from: the worker's strategy and tracer, and beat.
LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")


class QuietTicks(logging.Filter):
    """Lower the routine lines of the given tasks to DEBUG; drop them unless DEBUG is on."""

    def __init__(self, tasks: Collection[str]) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether to log the record, lowered to DEBUG when it is a tick's routine line."""
        if record.levelno != logging.INFO or record.msg not in ROUTINE_LINES:
            return True
        if not self.tasks.intersection(_string_args(record.args)):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_ticks(**_signal: Any) -> None:
    """Install the filter on Celery's loggers (connected to Celery's after_setup_logger)."""
    ticks = QuietTicks(URGENT_HOUSEKEEPING)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietTicks) for f in logger.filters):
            logger.addFilter(ticks)


def _string_args(args: Any) -> list[str]:
    values = args.values() if isinstance(args, Mapping) else args or ()
    return [value for value in values if isinstance(value, str)]
