"""Option values the `responder` commands share."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import click

from tasks.runtime import Runtime
from tasks.settings import Settings, SettingsError, settings_from_env
from triage.policy import parse_span


def settings_or_usage_error() -> Settings:
    """Read the settings from the environment; a bad one is a usage error naming it."""
    try:
        return settings_from_env(os.environ)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def runtime_or_usage_error() -> Runtime:
    """Return a Runtime on the environment's settings (nothing connects until first use)."""
    return Runtime(settings_or_usage_error())


def window_start(text: str | None) -> datetime | None:
    """Turn a --since value such as 1h or 7d into the moment the window starts."""
    if not text:
        return None
    try:
        span = parse_span(text)
    except ValueError:
        raise click.BadParameter(f"expected a duration like 30m, 1h or 2d, got {text!r}") from None
    return datetime.now(UTC) - span.duration
