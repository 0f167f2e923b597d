"""The `responder` command, one module per command group; `run` supervises the parts.

May import: anything in `tasks`, `triage` and `collectors`; not `webhooks` (it starts the
receiver as its own process).
"""

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

from tasks.cli.action import action_group
from tasks.cli.deliveries import deliveries_command, replay_command
from tasks.cli.demo_alert import demo_alert_command
from tasks.cli.diagnose import diagnose_command
from tasks.cli.options import settings_or_usage_error
from tasks.cli.policy import classify_command, policy_group
from tasks.cli.report import report_command
from tasks.cli.sla import sla_command
from tasks.cli.status import status_command
from tasks.lanes import urgent_queue
from tasks.notes.voice import Voice
from tasks.runtime import load_policy
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
main.add_command(status_command)
main.add_command(demo_alert_command)
main.add_command(action_group)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--concurrency", default=4, show_default=True, type=int, help="Worker processes.")
def run(host: str, port: int, concurrency: int) -> None:
    """Run receiver, worker (with beat) and urgent worker in the foreground (for a laptop)."""
    settings = settings_or_usage_error()
    try:
        policy = load_policy(settings)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    if problems := Voice.of(policy).check():  # not a blank in a note at 3 a.m.
        raise click.ClickException("note templates: " + "; ".join(problems))
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
    celery = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "INFO"]
    parts = {
        "receiver": [
            sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "2",
            "--config", "python:webhooks.gunicorn_config", "--access-logfile", "-",
            "webhooks:create_app()",
        ],
        # Both lanes, urgent first, and beat inside it.
        "worker": [
            *celery, "--beat", "--concurrency", str(concurrency), "--hostname", "worker@%h",
            "--schedule", str(var / "celerybeat-schedule"),
        ],
        # Capacity P2/P3 work cannot take: only the urgent queue.
        "urgent worker": [
            *celery, "--concurrency", "2", "--queues", urgent_queue(settings.queue),
            "--hostname", "urgent@%h",
        ],
    }  # fmt: skip
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Handlers first: a Ctrl-C while the children start must still stop them all.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    sys.exit(Supervisor(parts, environment).run(lambda: stopping))


class Supervisor:
    """Run named parts; restart one that dies, with a back-off, as compose's restart policy does.

    A worker can die on its own (the OOM killer, a broker restart kombu does not survive);
    until something starts it again nothing is processed, so this does, and says so.
    """

    FIRST_BACKOFF = 1.0
    MAX_BACKOFF = 30.0
    STEADY_SECONDS = 60.0  # a part that ran this long starts over from the first back-off

    def __init__(self, parts: dict[str, list[str]], environment: dict[str, str]) -> None:
        self.parts = parts
        self.environment = environment
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.backoff = dict.fromkeys(parts, self.FIRST_BACKOFF)
        self.restart_at: dict[str, float] = {}

    def start(self, name: str) -> None:
        """Start one part."""
        self.children[name] = subprocess.Popen(self.parts[name], env=self.environment)
        self.started[name] = time.monotonic()

    def run(self, stopping: Callable[[], bool]) -> int:
        """Run until told to stop; return the exit code."""
        for name in self.parts:
            self.start(name)
        while not stopping():
            self.check(time.monotonic())
            time.sleep(0.5)
        self.stop_all()
        return 0

    def check(self, now: float) -> None:
        """Schedule a restart for each part that exited; start those whose back-off is over."""
        for name, child in self.children.items():
            if child.poll() is None or name in self.restart_at:
                continue
            if now - self.started[name] > self.STEADY_SECONDS:
                self.backoff[name] = self.FIRST_BACKOFF
            delay = self.backoff[name]
            self.backoff[name] = min(delay * 2, self.MAX_BACKOFF)
            self.restart_at[name] = now + delay
            click.echo(
                f"responder: the {name} exited ({child.returncode}); restarting it in {delay:g} s",
                err=True,
            )
        for name, when in list(self.restart_at.items()):
            if now >= when:
                del self.restart_at[name]
                self.start(name)
                click.echo(f"responder: the {name} started again", err=True)

    def stop_all(self) -> None:
        """Stop every part, killing those that do not stop in time."""
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
