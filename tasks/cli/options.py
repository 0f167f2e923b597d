"""Option values the `responder` commands share."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import click
from redis import RedisError

from tasks.celery_app import make_celery, sender_of
from tasks.runtime import Runtime
from tasks.settings import Settings, SettingsError, settings_from_env, shown_url
from triage.policy import parse_span


class WholeSummaryGroup(click.Group):
    """A command group whose --help lists each command's whole one-line summary."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with their whole summaries, wrapped, never cut with "..."."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                # Click cuts summaries to the terminal's width; ours are one sentence each.
                rows.append((name, command.get_short_help_str(limit=sys.maxsize)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class ConfigurationError(click.ClickException):
    """A setting or the policy a command cannot run with: exit 2, as bad usage is."""

    exit_code = 2


def settings_or_usage_error() -> Settings:
    """Read the settings from the environment; a bad one is a configuration error naming it."""
    try:
        return settings_from_env(os.environ)
    except SettingsError as exc:
        raise ConfigurationError(str(exc)) from None


def redis_unreachable(redis_url: str, exc: RedisError) -> click.ClickException:
    """Return the error of a command that needed Redis and could not talk to it (exit 1)."""
    # redis-py's messages name the host and port, never the password; the URL shown masks it.
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return click.ClickException(f"cannot reach Redis at {shown_url(redis_url)} ({detail})")


def runtime_or_usage_error(queue_tasks: bool = False) -> Runtime:
    """Return a Runtime on the environment's settings and policy (nothing connects yet).

    With `queue_tasks`, it queues work (Slack's messages) through a Celery app of its own.
    """
    settings = settings_or_usage_error()
    runtime = Runtime(settings, send_task=sender_of(make_celery(settings)) if queue_tasks else None)
    # Loaded now, as the server does at start: a broken policy stops every command the same
    # way (exit 2), not only those that happen to read it.
    runtime.policy  # noqa: B018
    return runtime


def window_start(text: str | None) -> datetime | None:
    """Turn a --since value such as 1h or 7d into the moment the window starts."""
    if not text:
        return None
    try:
        span = parse_span(text)
    except ValueError:
        raise click.BadParameter(f"expected a duration like 30m, 1h or 2d, got {text!r}") from None
    return datetime.now(UTC) - span.duration
