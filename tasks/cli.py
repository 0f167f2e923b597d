"""The `responder` command: run the service, replay deliveries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from tasks.cli_options import settings_or_usage_error
from tasks.delivery_commands import deliveries_command, replay_command
from tasks.diagnose_command import diagnose_command
from tasks.policy_commands import classify_command, policy_group
from tasks.report_command import report_command
from tasks.runtime import load_policy
from tasks.sla_command import sla_command
from triage.policy import PolicyError


@click.group()
def main() -> None:
    """EAFIX first responder: answers every production alert in its first minutes."""


main.add_command(policy_group)
main.add_command(classify_command)
main.add_command(deliveries_command)
main.add_command(replay_command)
main.add_command(diagnose_command)
main.add_command(sla_command)
main.add_command(report_command)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--concurrency", default=4, show_default=True, type=int, help="Worker processes.")
def run(host: str, port: int, concurrency: int) -> None:
    """Run receiver, worker and beat together in the foreground (for a laptop)."""
    settings = settings_or_usage_error()
    try:
        policy = load_policy(settings)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    var = Path("var")
    var.mkdir(exist_ok=True)
    # gunicorn's workers share metrics through files; stale ones from a last run would add up.
    metrics_dir = var / "prometheus-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir.resolve())}
    mode = "outbox " + str(settings.outbox_dir) if settings.outbox_mode else "PagerDuty API"
    click.echo(f"responder: policy {policy.source}; PagerDuty writes go to {mode}")
    click.echo(f"responder: listening on http://{host}:{port} (Ctrl-C stops everything)")
    commands = [
        [
            sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "2",
            "--config", "python:webhooks.gunicorn_config", "--access-logfile", "-",
            "webhooks:create_app()",
        ],
        [
            sys.executable, "-m", "celery", "-A", "tasks", "worker", "--beat",
            "--loglevel", "INFO", "--concurrency", str(concurrency),
            "--schedule", str(var / "celerybeat-schedule"),
        ],
    ]  # fmt: skip
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Handlers first: a Ctrl-C while the children start must still stop them all.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    children = [subprocess.Popen(command, env=environment) for command in commands]
    sys.exit(_supervise(children, lambda: stopping))


def _supervise(children: list[subprocess.Popen[bytes]], stopping: Callable[[], bool]) -> int:
    """Wait until a child exits or we are told to stop; stop all children; return a code."""
    code = 0
    while not stopping():
        exited = [c for c in children if c.poll() is not None]
        if exited:
            code = exited[0].returncode or 1
            click.echo(f"responder: {exited[0].args[3]} exited ({code}); stopping", err=True)
            break
        time.sleep(0.5)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    return code
