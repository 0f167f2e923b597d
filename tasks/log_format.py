"""Log lines as JSON objects (RESPONDER_LOG_FORMAT=json), one a line, for a log shipper.

Every process writes them the same way: the receiver (gunicorn's logger class), the workers
and beat (Celery's logging signals) and `responder run`. A line holds the time, the level, the
logger and the message; a failure adds its exception's type and where it was raised, never the
exception's text or its locals: an exception about a request can quote the request's body.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

JSON = "json"
TEXT = "text"
# Celery prints its start-up banner with print(), not through logging; `celery --quiet` leaves
# it out, and Celery reads that option from this variable (its CLI's auto_envvar_prefix).
CELERY_QUIET_VARIABLE = "CELERY_QUIET"


class JsonLines(logging.Formatter):
    """Format a record as one line of JSON: time, level, logger, message, exception type."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, trace = record.exc_info
            entry["exception"] = f"{kind.__module__}.{kind.__qualname__}"
            # Where, not what: file, line and function of each frame, without the source text.
            entry["at"] = [
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(trace)
            ][-5:]
        # One line whatever the message holds: json.dumps escapes newlines and controls.
        return json.dumps(entry, ensure_ascii=False, default=str)


JSON_LINES = JsonLines()


def use_json_lines(*loggers: logging.Logger) -> None:
    """Give every handler of each logger the JSON formatter; a bare root logger gets stderr.

    With the root logger, Python's warnings are logged through it too (not printed).
    """
    for logger in loggers:
        if logger is logging.getLogger():
            logging.captureWarnings(True)
            if not logger.handlers:
                # Without a handler, Python's last resort prints a bare message: not JSON.
                logger.addHandler(logging.StreamHandler(sys.stderr))
        for handler in logger.handlers:
            handler.setFormatter(JSON_LINES)


def json_lines_after_setup(logger: logging.Logger, **_signal: Any) -> None:
    """Turn Celery's freshly set up logger into JSON lines (after_setup_[task_]logger)."""
    use_json_lines(logger)


def quiet_worker(instance: Any, **_signal: Any) -> None:
    """Leave out the worker's printed banner (celeryd_init): it is not a JSON line."""
    instance.quiet = True


def log_format_of(environ: Mapping[str, str]) -> str:
    """Return the log format the environment asks for; the default text for any other value.

    For the loggers set up before the settings are checked (gunicorn's): a bad value is then
    refused, naming the variable, by the settings themselves.
    """
    return JSON if environ.get("RESPONDER_LOG_FORMAT", "").strip() == JSON else TEXT
