"""The whole world on loopback: EAFIX simulator, its Docker engine, Prometheus, Alertmanager, the
responder (receiver, worker, beat) and a fake PagerDuty. Used by `make demo` and,
session-scoped, by the end-to-end tests.

Prometheus scrapes the simulator every second with EAFIX's alert rules (`for` shortened to 0s so
a scenario fires in seconds); Alertmanager groups by alert name, mutes what another alert explains
(the inhibit_rules of examples/alertmanager.yml) and sends each group both to the
responder (bearer auth) and to the fake PagerDuty's Events API, which opens the incident the
way PagerDuty would (dedup key = sha256 of the group key).

Each simulated service runs as a container of compose project `eafix` on a fake Docker engine
(the Engine API on a Unix socket; the responder's Docker SDK is pointed at it): a service whose
process dies shows as an exited container, and `docker stop`/`start`/`restart` through the
engine stop and start the service. Beat runs the SLA clock (the trading desk's and management's
e-mails are its deadlines); Slack and e-mail go to the world's outbox (`<directory>/outbox/`).
The receiver takes PagerDuty webhooks signed with WEBHOOK_SECRET, so a note approving an action
reaches it as PagerDuty would send it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import requests
import yaml

from demo.approve import NoteApprover, Person, deliver, status_event
from demo.docker_engine import FakeContainer, FakeDockerEngine, host_network_exec
from demo.simulator import SERVICES, Simulator
from tasks.store import keyspace
from tests.fakes.pagerduty import FakePagerDuty
from triage.policy import builtin_text

PROJECT = Path(__file__).resolve().parent.parent
SHARED_RULES = PROJECT.parent / "shared" / "eafix" / "alert-rules.yml"
OWN_RULES = Path(__file__).resolve().parent / "alert-rules.yml"
# The Alertmanager configuration operators start from; the world runs its inhibit_rules as they are.
EXAMPLE_ALERTMANAGER = PROJECT / "examples" / "alertmanager.yml"
# Alertmanager's always-firing Watchdog, added to EAFIX's rules when they do not have it.
WATCHDOG_RULES = PROJECT / "examples" / "watchdog-rules.yml"
TOKEN = "demo-alertmanager-token"
PD_TOKEN = "demo-pagerduty-token"
LINK_SECRET = "demo-link-secret"  # signs the incident page's links the notes carry
ROUTING_KEY = "R" * 32
WEBHOOK_SECRET = "demo-pagerduty-webhook-secret"  # the v3 subscription's signing secret
COMPOSE_PROJECT = "eafix"
# A process that dies on its own exits 1; one `docker stop` ends exits 143 (the engine sets it).
CRASH_EXIT_CODE = 1
# A world whose market trades around the clock (but for Saturday's last minute, New York time:
# a session must close), so that the runbook's market-hours rules apply whenever it runs.
ALWAYS_OPEN = {
    "opens": {"day": "sunday", "time": "00:00"},
    "closes": {"day": "saturday", "time": "23:59"},
    "holidays": [],
}
# absent() is true until the first scrape: rules on it keep a short `for`, or a fresh world would
# page for a target Prometheus simply has not scraped yet.
ABSENT_FOR = "15s"


class WorldError(RuntimeError):
    """A part of the world would not start; the message says which and where its log is."""


def binary(*names: str) -> str:
    """Return the first of `names` on PATH, or raise naming the Debian package."""
    for name in names:
        if found := shutil.which(name):
            return found
    raise WorldError(
        f"{names[0]} is not installed (Debian package {names[0]}; `make test` installs it)"
    )


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rules_path() -> Path:
    """Return EAFIX's alert rules: shared/'s (required in CI), else the demo's own copy."""
    source = Path(os.environ.get("RESPONDER_EAFIX_RULES", SHARED_RULES))
    if not source.is_file():
        if os.environ.get("CI", "").lower() == "true":
            raise WorldError(f"EAFIX's alert rules are required in CI and missing: {source}")
        source = OWN_RULES
    return source


def rules_text() -> str:
    """Return EAFIX's alert rules with `for` set to 0s (absent(): 15s), from shared/ or the
    demo's own."""
    rules = yaml.safe_load(rules_path().read_text())
    names = {rule.get("alert") for group in rules["groups"] for rule in group["rules"]}
    if "Watchdog" not in names:
        rules["groups"] += yaml.safe_load(WATCHDOG_RULES.read_text())["groups"]
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = ABSENT_FOR if "absent(" in str(rule.get("expr", "")) else "0s"
    return yaml.safe_dump(rules, sort_keys=False)


def inhibit_rules() -> list[dict[str, Any]]:
    """Return the inhibit_rules of the example Alertmanager configuration."""
    return yaml.safe_load(EXAMPLE_ALERTMANAGER.read_text())["inhibit_rules"]


@dataclass
class World:
    """Start, drive and stop the world; every process logs under `directory`.

    `market`: "clock" keeps EAFIX's market hours (the runbook's answers depend on when the world
    runs), "open" has the market trade around the clock.
    """

    directory: Path
    redis_url: str
    queue: str = "responder-world"
    market: str = "clock"
    # attach: Alertmanager pages PagerDuty itself; trigger: the responder opens the incidents.
    pagerduty_mode: str = "attach"
    # False: Alertmanager without the example's inhibit_rules (correlation alone ties alerts).
    inhibit: bool = True
    # Policy sections to change before the responder starts, e.g. {"correlation": {"mode": "on"}}.
    policy_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    simulator: Simulator = field(init=False)
    docker: FakeDockerEngine = field(init=False)
    pagerduty: FakePagerDuty = field(init=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def start(self) -> World:
        """Start everything, each part only once the one before answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # A fresh world each time: series and silences of an earlier run would fire again.
        for stale in ("prometheus-data", "alertmanager-data", "bundles", "outbox"):
            shutil.rmtree(self.directory / stale, ignore_errors=True)
        # Its incidents are new too: claims of an earlier run's incidents (same group keys)
        # would have the new deliveries join runs that no longer exist.
        state = redis.Redis.from_url(self.redis_url)
        keyspace.forget_everything(state)
        state.close()
        try:
            self.pagerduty = FakePagerDuty(token=PD_TOKEN).start()
            self.simulator = Simulator().start()
            self._start_docker()
            self._start_responder()
            self._start_prometheus()
            self._start_alertmanager()
            self._start_status_webhooks()
        except BaseException:
            self.stop()
            raise
        # For a person's own `responder` commands in this world (`set -a; . var/demo/env`).
        # Its tokens are the demo's own constants, nothing of anyone's.
        (self.directory / "env").write_text(
            "".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(self.env.items()))
        )
        return self

    def stop(self) -> None:
        """Stop every process and server of the world."""
        self._stopping.set()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for part in ("docker", "simulator", "pagerduty"):
            if hasattr(self, part):
                getattr(self, part).stop()

    @property
    def env(self) -> dict[str, str]:
        """Return the responder's environment in this world."""
        # Trigger mode: the responder opens incidents through the fake's Events API v2.
        events = (
            {
                "RESPONDER_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
                "RESPONDER_PAGERDUTY_EVENTS_URL": self.pagerduty.base_url,
            }
            if self.pagerduty_mode == "trigger"
            else {}
        )
        return {
            **events,
            "RESPONDER_REDIS_URL": self.redis_url,
            "RESPONDER_QUEUE": self.queue,
            "RESPONDER_POLICY": str(self.directory / "policy.yaml"),
            "RESPONDER_ALERTMANAGER_TOKEN": TOKEN,
            "RESPONDER_PAGERDUTY_TOKEN": PD_TOKEN,
            "RESPONDER_PAGERDUTY_FROM": "responder@eafix.example",
            "RESPONDER_PAGERDUTY_API_URL": self.pagerduty.base_url,
            "RESPONDER_PAGERDUTY_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "RESPONDER_DOCKER_URL": self.docker.url,
            "RESPONDER_COMPOSE_PROJECT": COMPOSE_PROJECT,
            "RESPONDER_PAGERDUTY_CA_FILE": self.pagerduty.ca_file,
            "RESPONDER_BUNDLE_DIR": str(self.directory / "bundles"),
            "RESPONDER_OUTBOX_DIR": str(self.directory / "outbox"),
            # Slack and e-mail stay in this world: to its outbox (demo/messages.py tells them),
            # whatever the shell that started it has set.
            "RESPONDER_SLACK_TOKEN": "",
            "RESPONDER_SMTP_HOST": "",
            "RESPONDER_SLA_TICK_SECONDS": "2",
            "RESPONDER_PROMETHEUS_URL": self.urls.get("prometheus", ""),
            "RESPONDER_INCIDENT_LOOKUP_ATTEMPTS": "30",
            "RESPONDER_INCIDENT_LOOKUP_DELAY": "0.5",
            "RESPONDER_COLLECTOR_TIMEOUT": "3",
            "PROMETHEUS_MULTIPROC_DIR": str(self.directory / "metrics"),
            # Notes link the incident page on this world's receiver (demo/__main__.py prints it).
            "RESPONDER_LINK_SECRET": LINK_SECRET,
            "RESPONDER_PUBLIC_URL": self.urls.get("responder", ""),
        }

    def inject(self, scenario: str) -> str:
        """Break something in the simulator; return what."""
        return self.simulator.inject(scenario)

    def clear(self) -> None:
        """Mend everything: every service and container running, trading on."""
        self.simulator.clear()

    def note_approver(self, person: Person | None = None) -> NoteApprover:
        """Return an on-call engineer who approves proposals by PagerDuty notes in this world."""
        return NoteApprover(
            redis_url=self.redis_url,
            receiver_url=self.urls["responder"],
            webhook_secret=WEBHOOK_SECRET,
            pagerduty_url=self.pagerduty.base_url,
            pagerduty_token=PD_TOKEN,
            pagerduty_ca_file=self.pagerduty.ca_file,
            person=person,
        )

    def firing_alerts(self) -> list[dict[str, Any]]:
        """Return the alerts Prometheus has firing ([] when it does not answer)."""
        return self.alerts_now() or []

    def alerts_now(self) -> list[dict[str, Any]] | None:
        """Return the alerts Prometheus has firing, or None when it does not answer."""
        try:
            answer = requests.get(f"{self.urls['prometheus']}/api/v1/alerts", timeout=2).json()
        except (requests.RequestException, ValueError):
            return None
        return [a for a in answer["data"]["alerts"] if a["state"] == "firing"]

    # --- parts -------------------------------------------------------------------------

    def _start_docker(self) -> None:
        self.docker = containers_for(self.simulator)

    def _start_responder(self) -> None:
        policy = yaml.safe_load(builtin_text())
        for service in policy["catalog"]:
            service["health_url"] = f"{self.simulator.url(service['name'])}/healthz"
        if self.market == "open":
            policy["market_hours"].update(ALWAYS_OPEN)
        policy["pagerduty"]["incident"] = self.pagerduty_mode
        # The world's own external dependencies: the simulated broker link (the execution
        # engine's port) and the world's Redis, never the runbook's real broker.
        redis_address = urlsplit(self.redis_url)
        policy["diagnostics"]["external_dependencies"] = [
            {"name": "broker-api", "url": f"{self.simulator.url('execution-engine')}/healthz",
             "runbook": "Network/Connectivity: curl -I https://api.external-broker.com/"},
            {"name": "redis", "tcp": f"{redis_address.hostname}:{redis_address.port or 6379}",
             "runbook": "Initial Diagnosis 6: Check Redis connectivity (redis-cli ping)"},
        ]  # fmt: skip
        # Watching the watcher: Alertmanager repeats the Watchdog every minute (below).
        policy["watchdog"] = {"interval": "5m", "market_hours_only": True}
        for section, values in self.policy_overrides.items():
            policy[section].update(values)
        (self.directory / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        shutil.rmtree(self.directory / "metrics", ignore_errors=True)
        (self.directory / "metrics").mkdir()
        # Prometheus's port is fixed now, so the workers can be told where it will be.
        self.urls["prometheus"] = f"http://127.0.0.1:{free_port()}"
        port = free_port()
        self.urls["responder"] = f"http://127.0.0.1:{port}"
        self._spawn(
            "receiver",
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--config", "python:webhooks.gunicorn_config", "webhooks:create_app()"],
            f"{self.urls['responder']}/readyz",
        )  # fmt: skip
        self._spawn(
            "worker",
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "INFO",
             "--concurrency", "4", "--without-gossip", "--without-mingle",
             "--hostname", f"world-{port}@%h"],
            ready_line=b" ready.",
        )  # fmt: skip
        # The SLA clock: the trading desk's and management's e-mails are its deadlines.
        self._spawn(
            "beat",
            [sys.executable, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO",
             "--schedule", str(self.directory / "celerybeat-schedule")],
            ready_line=b"beat: Starting",
        )  # fmt: skip

    def _start_prometheus(self) -> None:
        (self.directory / "rules.yml").write_text(rules_text())
        alertmanager_port = free_port()
        self.urls["alertmanager"] = f"http://127.0.0.1:{alertmanager_port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.directory / "rules.yml")],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": f"eafix-{name}",
                    "static_configs": [
                        {"targets": [self.simulator.url(name).removeprefix("http://")]}
                    ],
                }
                for name in SERVICES
            ],
        }
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        address = self.urls["prometheus"].removeprefix("http://")
        self._spawn(
            "prometheus",
            [binary("prometheus"), f"--config.file={self.directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.directory / 'prometheus-data'}",
             f"--web.listen-address={address}"],
            f"{self.urls['prometheus']}/-/ready",
        )  # fmt: skip

    def _start_alertmanager(self) -> None:
        pagerduty = [
            {
                "routing_key": ROUTING_KEY,
                "url": f"{self.pagerduty.base_url}/v2/enqueue",
                "http_config": {"tls_config": {"ca_file": self.pagerduty.ca_file}},
            }
        ]
        config = {
            "route": {
                "receiver": "responder-and-pagerduty",
                "group_by": ["alertname"],
                "group_wait": "1s",
                "group_interval": "5s",
                "repeat_interval": "4h",
                # The Watchdog to the responder alone, as examples/alertmanager.yml routes it.
                "routes": [
                    {
                        "matchers": ['alertname="Watchdog"'],
                        "receiver": "responder-watchdog",
                        "group_wait": "0s",
                        "group_interval": "1m",
                        "repeat_interval": "1m",
                    }
                ],
            },
            "receivers": [
                {
                    "name": "responder-watchdog",
                    "webhook_configs": [
                        {
                            "url": f"{self.urls['responder']}/webhooks/alertmanager",
                            "send_resolved": False,
                            "http_config": {"authorization": {"credentials": TOKEN}},
                        }
                    ],
                },
                {
                    "name": "responder-and-pagerduty",
                    "webhook_configs": [
                        {
                            "url": f"{self.urls['responder']}/webhooks/alertmanager",
                            "send_resolved": True,
                            "http_config": {"authorization": {"credentials": TOKEN}},
                        }
                    ],
                    # In trigger mode the responder opens the incidents (Events API v2).
                    "pagerduty_configs": pagerduty if self.pagerduty_mode == "attach" else [],
                },
            ],
            "inhibit_rules": inhibit_rules() if self.inhibit else [],
        }
        (self.directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
        address = self.urls["alertmanager"].removeprefix("http://")
        self._spawn(
            "alertmanager",
            [binary("prometheus-alertmanager", "alertmanager"),
             f"--config.file={self.directory / 'alertmanager.yml'}",
             f"--storage.path={self.directory / 'alertmanager-data'}",
             f"--web.listen-address={address}", "--cluster.listen-address="],
            f"{self.urls['alertmanager']}/-/ready",
        )  # fmt: skip

    def _start_status_webhooks(self) -> None:
        """Send the receiver PagerDuty's webhook for each incident acknowledged or resolved, as
        the account's v3 subscription does: the closing note, the parent's status in Slack and
        the trading desk's summary e-mail follow the resolve."""
        told: dict[str, str] = {}

        def relay() -> None:
            while not self._stopping.wait(0.3):
                for incident_id, incident in list(self.pagerduty.incidents.items()):
                    status = str(incident.get("status", ""))
                    if told.setdefault(incident_id, status) == status:
                        continue
                    told[incident_id] = status
                    if status not in ("acknowledged", "resolved"):
                        continue
                    try:
                        deliver(self.urls["responder"], status_event(incident), WEBHOOK_SECRET)
                    except requests.RequestException:
                        pass  # the receiver is stopping with the world, or logs why

        threading.Thread(target=relay, name="pagerduty-webhooks", daemon=True).start()

    def _spawn(
        self, name: str, command: list[str], ready_url: str = "", ready_line: bytes = b""
    ) -> None:
        log_path = self.directory / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=PROJECT, env={**os.environ, **self.env}, stdout=log, stderr=log
            )
        self.processes[name] = process
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise WorldError(f"{name} exited at start; see {log_path}")
            if ready_line and ready_line in log_path.read_bytes():
                return
            if ready_url and _answers(ready_url):
                return
            time.sleep(0.2)
        raise WorldError(f"{name} did not become ready in 60 s; see {log_path}")


def containers_for(simulator: Simulator) -> FakeDockerEngine:
    """Start a Docker engine running each of the simulator's services as a compose container.

    The two are kept in step both ways: a stop, start or restart through the Engine API stops
    or starts the service (a start clears the scenario that took it down), and a service whose
    process dies (a scenario) shows as an exited container that logged why.
    """

    def container_changed(container: FakeContainer) -> None:
        if container.state == "running":
            container.log_lines.append(_log(container.service, "INFO started"))
            simulator.start_service(container.service)
        else:
            container.log_lines.append(_log(container.service, "INFO stopped on SIGTERM"))
            simulator.stop_service(container.service)

    engine = FakeDockerEngine(
        [FakeContainer(name, project=COMPOSE_PROJECT, log_lines=[_log(name, "INFO started")])
         for name in SERVICES],
        on_change=container_changed,
    )  # fmt: skip
    # The `network` collector's probes from inside a container reach what the host reaches.
    engine.exec_handler = host_network_exec

    def service_changed(service: str, running: bool) -> None:
        container = engine.container(service)
        if (container.state == "running") == running:
            return  # the engine made the change, and knows
        if running:
            engine.set_state(service, "running")
            container.log_lines.append(_log(service, "INFO started"))
        else:
            container.log_lines.append(
                _log(service, f"CRITICAL process exited with code {CRASH_EXIT_CODE}")
            )
            engine.set_state(service, "exited", CRASH_EXIT_CODE)

    simulator.watchers.append(service_changed)
    return engine.start()


def _log(service: str, text: str) -> str:
    """Return a container log line as the engine stamps it (RFC 3339, `timestamps=1`)."""
    return f"{datetime.now(UTC).isoformat().replace('+00:00', 'Z')} {service} {text}"


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
