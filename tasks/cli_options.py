"""Option values the `responder` commands share."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from triage.policy import parse_span


def window_start(text: str | None) -> datetime | None:
    """Turn a --since value such as 1h or 7d into the moment the window starts."""
    if not text:
        return None
    try:
        span = parse_span(text)
    except ValueError:
        raise click.BadParameter(f"expected a duration like 30m, 1h or 2d, got {text!r}") from None
    return datetime.now(UTC) - span.duration
