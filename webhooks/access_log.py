"""Logs that never hold a capability: every query-string value is masked before it is written.

A signed link (`/incidents/<id>?expires=...&sig=...`, the bundles') opens its page for days to
whoever holds it, so a log line holding one is a copy of the key. Masking every value rather
than known names keeps a future signed parameter out of the logs too; the names stay, so a
line still says which kind of link was used.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from gunicorn.glogging import Logger

from tasks.log_format import JSON, log_format_of, use_json_lines

# A parameter's name up to its `=`, then its value up to the next separator. Linear: no
# nested repetition, and each part stops at characters the other cannot start with.
_QUERY_VALUE = re.compile(r"([?&][^=&#\s\"]*=)[^&#\s\"]*")
MASK = "***"


def mask_query(text: str) -> str:
    """Return `text` with the value of every query parameter in it replaced by `***`."""
    return _QUERY_VALUE.sub(rf"\g<1>{MASK}", text) if "=" in text else text


class MaskQueries(logging.Filter):
    """Mask query values in a record's message and arguments (gunicorn's and werkzeug's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        if isinstance(record.msg, str):
            record.msg = mask_query(record.msg)
        if isinstance(record.args, dict):  # gunicorn's access log: its own dict of atoms, kept
            for name, value in list(record.args.items()):
                record.args[name] = _masked(name, value)
        elif isinstance(record.args, tuple):
            record.args = tuple(_masked("", value) for value in record.args)
        return True


def _masked(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in ("q", "{query_string}e"):  # the bare query string, without its "?"
        return mask_query("?" + value)[1:]
    return mask_query(value)


MASK_QUERIES = MaskQueries()


class QueryMaskingLogger(Logger):
    """gunicorn's logger whose access and error logs mask query values (`logger_class`)."""

    def setup(self, cfg: Any) -> None:
        """Set up gunicorn's logs, then mask what they are given."""
        super().setup(cfg)
        # The same filter object each time: setup runs again on reload, and adds nothing twice.
        self.access_log.addFilter(MASK_QUERIES)
        self.error_log.addFilter(MASK_QUERIES)
        if log_format_of(os.environ) == JSON:
            # The application's own loggers reach the root one: JSON lines there too.
            use_json_lines(self.error_log, self.access_log, logging.getLogger())
