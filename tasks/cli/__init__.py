"""The `responder` command, one module per command group; `run` supervises the parts.

May import: anything in `tasks`, `triage` and `collectors`; not `webhooks` (it starts the
receiver as its own process).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
from redis import RedisError

from tasks.cli.action import action_group
from tasks.cli.correlate import correlate_command
from tasks.cli.deliveries import deliveries_command, replay_command
from tasks.cli.demo_alert import demo_alert_command
from tasks.cli.diagnose import diagnose_command
from tasks.cli.options import (
    ConfigurationError,
    WholeSummaryGroup,
    redis_unreachable,
    settings_or_usage_error,
)
from tasks.cli.policy import classify_command, policy_group
from tasks.cli.report import report_command
from tasks.cli.sla import sla_command
from tasks.cli.status import status_command
from tasks.cli.terminal import say
from tasks.lanes import urgent_worker_queues
from tasks.log_format import CELERY_QUIET_VARIABLE, JSON, use_json_lines
from tasks.notes.voice import TemplateProblem, Voice
from tasks.runtime import Runtime, load_policy
from tasks.settings import SettingsError, settings_from_env
from triage.policy import PolicyError

# Where the receiver says it is bound: `webhooks/gunicorn_config.py` reads the same name.
READY_FILE_VARIABLE = "RESPONDER_RUN_READY_FILE"
# `responder run`'s own lines, when the logs are JSON lines.
RUN_LOG = logging.getLogger("responder.run")


class ResponderGroup(WholeSummaryGroup):
    """The `responder` group: the same failure ends every command the same way."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a bad setting or policy exits 2, an unreachable Redis exits 1."""
        try:
            return super().invoke(ctx)
        except (SettingsError, PolicyError, TemplateProblem) as exc:
            raise ConfigurationError(str(exc)) from None
        except RedisError as exc:
            # The command got this far, so the settings it read are valid.
            raise redis_unreachable(settings_from_env(os.environ).redis_url, exc) from None


# Summaries on one line each where the terminal is wide enough; click's default stops at 80.
@click.group(cls=ResponderGroup, context_settings={"max_content_width": 120})
@click.version_option(package_name="eafix-responder", prog_name="responder")
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
main.add_command(correlate_command)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--concurrency", default=4, show_default=True, type=int, help="Worker processes.")
def run(host: str, port: int, concurrency: int) -> None:
    """Run receiver, worker, urgent worker and beat in the foreground (for a laptop)."""
    settings = settings_or_usage_error()
    policy = load_policy(settings)  # a broken one stops here, before anything starts
    if problems := Voice.of(policy).check():  # not a blank in a note at 3 a.m.
        raise ConfigurationError("note templates: " + "; ".join(problems))
    # The parts would each fail on their own, in a loop of restarts; say it once instead.
    Runtime(settings).redis.ping()
    var = Path("var")
    var.mkdir(exist_ok=True)
    # gunicorn's workers share metrics through files; stale ones from a last run would add up.
    metrics_dir = var / "prometheus-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    # Links in notes must reach this receiver: on the port it listens on, unless configured.
    public_url = os.environ.get("RESPONDER_PUBLIC_URL") or local_url(host, port)
    # gunicorn's when_ready hook writes its bound addresses here (webhooks/gunicorn_config.py).
    ready_file = Path(tempfile.mkdtemp(prefix="responder-run-")) / "receiver-ready"
    environment = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir.resolve()),
        "RESPONDER_PUBLIC_URL": public_url,
        READY_FILE_VARIABLE: str(ready_file),
    }
    tell: Callable[..., None] = say
    if settings.log_format == JSON:
        # Celery's banners are printed, not logged: only `celery --quiet` leaves them out.
        environment[CELERY_QUIET_VARIABLE] = "1"
        use_json_lines(logging.getLogger())
        RUN_LOG.setLevel(logging.INFO)
        tell = log_line

    mode = "outbox " + str(settings.outbox_dir) if settings.outbox_mode else "PagerDuty API"
    tell(f"responder: policy {policy.source}; PagerDuty writes go to {mode}")
    if policy.slack.enabled:
        slack = "Slack's Web API" if settings.slack_token else f"outbox {settings.outbox_dir}/slack"
        tell(f"responder: Slack messages go to {slack} (RESPONDER_SLACK_TOKEN)")
    mail = (
        f"outbox {settings.outbox_dir / 'email'} as .eml files (no RESPONDER_SMTP_HOST)"
        if settings.email_outbox_mode
        else f"SMTP {settings.smtp_host}:{settings.smtp_port}"
    )
    tell(f"responder: e-mails go to {mail}; each one sent is logged by the worker")
    tell(f"responder: links in notes point at {public_url} (RESPONDER_PUBLIC_URL)")
    parts = process_commands(
        queue=settings.queue, bind=bind_address(host, port), concurrency=concurrency, var=var
    )
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    def listening(name: str, addresses: str) -> None:
        tell(f"responder: listening on {addresses} (Ctrl-C stops everything)")

    # Handlers first: a Ctrl-C while the children start must still stop them all.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    supervisor = Supervisor(parts, environment, ready_files={"receiver": ready_file}, tell=tell)
    try:
        sys.exit(supervisor.run(lambda: stopping, on_ready=listening))
    finally:
        shutil.rmtree(ready_file.parent, ignore_errors=True)


def log_line(message: object = "", err: bool = False, nl: bool = True) -> None:
    """Log one of `responder run`'s lines (say's signature), for JSON lines."""
    RUN_LOG.info("%s", message)


# Nothing reads Celery's events (`responder status` reads the responder's own heartbeat keys;
# health checks use remote control, `inspect ping`), and mingle's start-up exchange, gossip
# and the event heartbeat are each broker traffic on every reconnect: after a Sentinel
# failover they held the worker's return to its queues for seconds (docs/failover.md).
WORKER_QUIET = ("--without-mingle", "--without-gossip", "--without-heartbeat")


def process_commands(queue: str, bind: str, concurrency: int, var: Path) -> dict[str, list[str]]:
    """Return the command of each part `responder run` starts (compose runs the same ones)."""
    celery = [sys.executable, "-m", "celery", "-A", "tasks"]
    return {
        "receiver": [
            # Workers, worker class and logger: webhooks/gunicorn_config.py, as compose's.
            sys.executable, "-m", "gunicorn", "--bind", bind,
            "--config", "python:webhooks.gunicorn_config", "--access-logfile", "-",
            "webhooks:create_app()",
        ],
        # Every queue: actions, urgent, Slack and e-mail (notify), then routine.
        "worker": [
            *celery, "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
            *WORKER_QUIET, "--hostname", "worker@%h",
        ],
        # Capacity P2/P3 work cannot take: approved actions and the urgent queue only.
        "urgent worker": [
            *celery, "worker", "--loglevel", "INFO", "--concurrency", "2", "--queues",
            urgent_worker_queues(queue), *WORKER_QUIET,
            "--hostname", "urgent@%h",
        ],
        # Its own process, as in production: a beat that dies is named and restarted alone.
        "beat": [
            *celery, "beat", "--loglevel", "INFO", "--schedule", str(var / "celerybeat-schedule"),
        ],
    }  # fmt: skip


def local_url(host: str, port: int) -> str:
    """Return the URL a browser on this machine reaches a receiver bound to host:port at."""
    # A wildcard address is not one to connect to; loopback is, from this machine.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{bind_address(host, port)}"


def bind_address(host: str, port: int) -> str:
    """Return host:port, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Supervisor:
    """Run named parts; restart one that dies, with a back-off, as compose's restart policy does.

    A worker can die on its own (the OOM killer, a broker restart kombu does not survive);
    until something starts it again nothing is processed, so this does, and says so.
    """

    FIRST_BACKOFF = 1.0
    MAX_BACKOFF = 30.0
    STEADY_SECONDS = 60.0  # a part that ran this long starts over from the first back-off

    def __init__(
        self,
        parts: dict[str, list[str]],
        environment: dict[str, str],
        ready_files: dict[str, Path] | None = None,
        tell: Callable[..., None] = say,
    ) -> None:
        self.parts = parts
        self.tell = tell  # the CLI's lines, or log records when the logs are JSON lines
        self.environment = environment
        # A part with a ready file writes it once it serves (gunicorn: once it is bound).
        self.ready_files = ready_files or {}
        self.ready: set[str] = set()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.backoff = dict.fromkeys(parts, self.FIRST_BACKOFF)
        self.restart_at: dict[str, float] = {}

    def start(self, name: str) -> None:
        """Start one part."""
        if name in self.ready_files:
            # The file of a last start would announce this one before it is ready.
            self.ready_files[name].unlink(missing_ok=True)
            self.ready.discard(name)
        self.children[name] = subprocess.Popen(self.parts[name], env=self.environment)
        self.started[name] = time.monotonic()

    def run(
        self,
        stopping: Callable[[], bool],
        on_ready: Callable[[str, str], None] = lambda name, text: None,
    ) -> int:
        """Run until told to stop, calling on_ready(part, what it wrote) when a part is ready."""
        for name in self.parts:
            self.start(name)
        while not stopping():
            self.check(time.monotonic())
            for name, text in self.newly_ready():
                on_ready(name, text)
            time.sleep(0.2)
        self.stop_all()
        return 0

    def newly_ready(self) -> list[tuple[str, str]]:
        """Return (part, what its ready file says) for each part that became ready."""
        found = []
        for name, path in self.ready_files.items():
            if name in self.ready or self.children[name].poll() is not None:
                continue
            try:
                text = path.read_text().strip()
            except FileNotFoundError:
                continue
            self.ready.add(name)
            found.append((name, text))
        return found

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
            self.tell(
                f"responder: the {name} exited ({child.returncode}); restarting it in {delay:g} s",
                err=True,
            )
        for name, when in list(self.restart_at.items()):
            if now >= when:
                del self.restart_at[name]
                self.start(name)
                self.tell(f"responder: the {name} started again", err=True)

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
