"""Alert storm: N deliveries in S seconds over G Alertmanager groups, a P0 injected halfway.

Production shape on loopback: its own Redis with AOF, gunicorn (2 workers), a Celery worker
on both lanes (concurrency 4), a worker on the urgent lane only (concurrency 2), beat, and
the schema-validating fake PagerDuty over HTTPS with an incident seeded for every group.
Every delivery is a group update carrying one new firing P3 alert; the P0 comes in its own
group. Prints intake, the P0's latencies, notes, coalescing, dead letters, PagerDuty's busiest
minute, queue depth over time, memory, and every 2xx delivery's fate.

    .venv/bin/python -m bench.storm [--deliveries 10000] [--seconds 60] [--groups 200]
        [--targets healthy|hanging] [--kill-worker-at S] [--restart-redis-at S] [--slack]
        [--flow-groups K]

`--flow-groups K` makes K of the groups outages along the trading flow (TradingServiceDown on
its services), which the built-in correlation rule joins into one incident: their PagerDuty
incidents are merged, and a merged incident counts as noted.

`--slack` adds the fake Slack Web API (a thread per incident, one message a second per
channel) and reports when the P0's thread and the P3s' threads came out.

Needs Debian's redis-server (make test-services installs it).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
import yaml
from werkzeug.serving import WSGIRequestHandler, make_server

from tasks.lanes import urgent_worker_queues
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import CHANNELS as SLACK_CHANNELS
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import SmtpServer
from triage.policy import builtin_text

PROJECT = Path(__file__).resolve().parent.parent
TOKEN = "storm-token"
PD_TOKEN = "storm-pd-token"
P0_GROUP = '{}:{alertname="PositionChecksumMismatch", storm="p0"}'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class HealthyTargets:
    """Every catalog service answers its health check at once."""

    def __init__(self) -> None:
        def app(environ: Any, start_response: Any) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "ok"}']

        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class HangingTargets:
    """Every catalog service accepts the connection and never answers, as in an outage."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def stop(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


class OwnRedis:
    """A redis-server of the bench's own, with AOF, that can be restarted on the same data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is needed (make test-services installs it)")
        command = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--dir", str(self.directory), "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise SystemExit("the bench's redis-server did not start")

    def restart(self) -> None:
        """Shut down (AOF written out) and start again on the same files."""
        try:
            redis.Redis.from_url(self.url).shutdown()
        except redis.RedisError:
            pass
        if self.process is not None:
            self.process.wait(timeout=30)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@dataclass
class Parts:
    """The responder's processes, started as in production."""

    directory: Path
    env: dict[str, str]
    port: int
    urgent_queues: str  # the urgent worker's --queues, as `responder run` gives them
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)

    def commands(self) -> dict[str, list[str]]:
        celery = [sys.executable, "-m", "celery", "-A", "tasks"]
        worker = [*celery, "worker", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        return {
            "receiver": [
                sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                "--workers", "2", "--config", "python:webhooks.gunicorn_config",
                "webhooks:create_app()",
            ],
            "worker": [*worker, "--concurrency", "4", "--hostname", "storm@%h"],
            "urgent worker": [
                *worker, "--concurrency", "2", "--queues", self.urgent_queues,
                "--hostname", "storm-urgent@%h",
            ],
            "beat": [
                *celery, "beat", "--loglevel", "INFO",
                "--schedule", str(self.directory / "celerybeat-schedule"),
            ],
        }  # fmt: skip

    def start(self, name: str) -> None:
        log = (self.directory / f"{name.replace(' ', '-')}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.commands()[name],
            cwd=PROJECT,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def start_all(self) -> None:
        for name in self.commands():
            self.start(name)
        deadline = time.monotonic() + 60
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        for name in ("worker", "urgent worker"):
            log = self.directory / f"{name.replace(' ', '-')}.log"
            while b" ready." not in log.read_bytes():
                if time.monotonic() > deadline:
                    raise SystemExit(f"the {name} did not start; see {log}")
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL a part and all its processes, as the OOM killer or a lost host does."""
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(timeout=10)

    def supervise(self, stop: threading.Event) -> None:
        """Restart a part that died, as compose's restart policy does."""
        while not stop.wait(1.0):
            for name, process in list(self.processes.items()):
                if process.poll() is not None:
                    print(f"  {name} exited ({process.returncode}); restarting it", flush=True)
                    self.restarts[name] += 1
                    self.start(name)

    def worker_rss(self) -> int:
        """Return the largest RSS of any Celery process, in bytes."""
        largest = 0
        for name in ("worker", "urgent worker"):
            try:
                main = psutil.Process(self.processes[name].pid)
                for process in [main, *main.children(recursive=True)]:
                    largest = max(largest, process.memory_info().rss)
            except psutil.Error:
                continue
        return largest

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def alert(name: str, labels: dict[str, str], fingerprint: str, summary: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": summary},
        "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


COSMETIC_ALERT = "GatewayStaticAssetErrors"
FLOW_ALERT = "TradingServiceDown"
FLOW = ("data-ingestor", "indicator-engine", "signal-generator", "execution-engine")


def storm_alert(n: int, flow: bool) -> dict[str, Any]:
    """Return the storm's n-th alert: a P3 cosmetic one, or a service of the flow down."""
    if flow:
        labels = {"category": "outage", "scope": "partial", "severity": "critical"}
        labels["job"] = f"eafix-{FLOW[n % len(FLOW)]}"
        labels["instance"] = f"flow-{n}"
        return alert(FLOW_ALERT, labels, f"{n:016x}", f"{FLOW[n % len(FLOW)]} is down")
    labels = {"category": "cosmetic", "service": "gui-gateway", "severity": "warning"}
    labels["instance"] = f"asset-{n}"
    return alert(COSMETIC_ALERT, labels, f"{n:016x}", "static asset errors on the GUI gateway")


def group_payload(group_key: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    first = alerts[0]["labels"]
    return {
        "receiver": "eafix-responder",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": first["alertname"]},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def incident_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def busiest_window(times: list[float], window: float = 60.0) -> int:
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def storm_policy(targets: HealthyTargets | HangingTargets) -> dict[str, Any]:
    """Return the built-in policy with every catalog service's health served by `targets`."""
    policy = yaml.safe_load(builtin_text())
    for service in policy["catalog"]:
        service["health_url"] = f"{targets.base}/{service['name']}/healthz"
    return policy


def responder_env(
    directory: Path, policy: dict[str, Any], own_redis: OwnRedis, pagerduty: FakePagerDuty
) -> dict[str, str]:
    """Write `policy` under `directory` and return the environment the bench's responder runs
    with: its own Redis, the fake PagerDuty over TLS, bundles, outbox and metrics under it."""
    (directory / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    (directory / "metrics").mkdir()
    return {
        **os.environ,
        "RESPONDER_REDIS_URL": own_redis.url,
        "RESPONDER_POLICY": str(directory / "policy.yaml"),
        "RESPONDER_ALERTMANAGER_TOKEN": TOKEN,
        "RESPONDER_PAGERDUTY_TOKEN": pagerduty.token,
        "RESPONDER_PAGERDUTY_FROM": "responder@eafix.example",
        "RESPONDER_PAGERDUTY_API_URL": pagerduty.base_url,
        "RESPONDER_PAGERDUTY_CA_FILE": pagerduty.ca_file,
        "RESPONDER_BUNDLE_DIR": str(directory / "bundles"),
        "RESPONDER_OUTBOX_DIR": str(directory / "outbox"),
        "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--targets", choices=["healthy", "hanging"], default="healthy")
    parser.add_argument("--kill-worker-at", type=float, default=None)
    parser.add_argument("--restart-redis-at", type=float, default=None)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--slack", action="store_true", help="post to the fake Slack too")
    parser.add_argument(
        "--flow-groups",
        type=int,
        default=0,
        help="this many groups are outages along the trading flow (correlation joins them)",
    )
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    own_redis = OwnRedis(directory)
    own_redis.start()
    pagerduty = FakePagerDuty(token=PD_TOKEN).start()
    mailbox = SmtpServer().start()  # the trading desk's and management's e-mails
    targets = HangingTargets() if args.targets == "hanging" else HealthyTargets()
    groups = [
        f'{{}}:{{alertname="{FLOW_ALERT if g < args.flow_groups else COSMETIC_ALERT}", '
        f'storm="{g}"}}'
        for g in range(args.groups)
    ]
    incidents = {
        key: pagerduty.add_incident(incident_key(key), "storm") for key in [*groups, P0_GROUP]
    }

    slack = FakeSlack().start() if args.slack else None
    policy = storm_policy(targets)
    for entry in policy["communication"]["slack"]["channels"].values():
        entry["channel"] = SLACK_CHANNELS[entry["channel"]]  # by id, as the README advises
    port = free_port()
    env = {
        **responder_env(directory, policy, own_redis, pagerduty),
        "RESPONDER_COLLECTOR_TIMEOUT": "5",
        "RESPONDER_SMTP_HOST": "127.0.0.1",
        "RESPONDER_SMTP_PORT": str(mailbox.port),
        "RESPONDER_SMTP_STARTTLS": "0",
    }
    if slack is not None:
        env.update(
            RESPONDER_SLACK_TOKEN=slack.token,
            RESPONDER_SLACK_API_URL=slack.base_url,
            RESPONDER_SLACK_CA_FILE=slack.ca_file,
        )
    parts = Parts(directory, env, port, urgent_worker_queues("responder"))
    client = redis.Redis.from_url(own_redis.url)
    stop = threading.Event()
    try:
        parts.start_all()
        memory_before = int(client.info("memory")["used_memory"])
        supervisor = threading.Thread(target=parts.supervise, args=(stop,), daemon=True)
        supervisor.start()
        report = storm(args, parts, own_redis, client, pagerduty, groups, incidents)
        report["redis_before"] = memory_before
        print_report(args, report)
        if slack is not None:
            print_slack(slack, incidents, report["t0"], report["p0_sent_at"])
        print_emails(mailbox, incidents[P0_GROUP], report.get("p0_sent_wall"))
    finally:
        stop.set()
        parts.stop_all()
        targets.stop()
        pagerduty.stop()
        if slack is not None:
            slack.stop()
        mailbox.stop()
        own_redis.stop()
        print(f"logs: {directory}")


def print_emails(mailbox: SmtpServer, p0_incident: str, p0_sent: float | None) -> None:
    """Print the e-mails the storm produced, and when the P0's came after its webhook."""
    kinds = Counter(str(r.message["X-EAFIX-Kind"]) for r in mailbox.received)
    p0 = [r for r in mailbox.received if r.message["X-EAFIX-Incident"] == p0_incident]
    after = ", ".join(
        f"{r.message['X-EAFIX-Kind']} {r.at - p0_sent:.2f} s" for r in p0 if p0_sent is not None
    )
    print(f"e-mails: {dict(kinds) or 'none'}; the P0's after its webhook: {after or 'none'}")


def storm(
    args: argparse.Namespace,
    parts: Parts,
    own_redis: OwnRedis,
    client: redis.Redis,
    pagerduty: FakePagerDuty,
    groups: list[str],
    incidents: dict[str, str],
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{parts.port}/webhooks/alertmanager"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    alerts_of: dict[str, list[dict[str, Any]]] = {g: [] for g in groups}
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    accepted: list[str] = []
    lock = threading.Lock()
    local = threading.local()
    p0_sent: list[float] = []

    def send(payload: bytes, p0: bool = False) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.monotonic()
        if p0:
            p0_sent.append(started)
        try:
            answer = session.post(url, data=payload, headers=headers, timeout=30)
            status = answer.status_code
            body = answer.json() if status == 202 else {}
        except requests.RequestException:
            status, body = 0, {}
        with lock:
            statuses[status] += 1
            latencies.append(time.monotonic() - started)
            if status == 202:
                accepted.append(body["delivery_id"])

    samples: list[tuple[float, int, int, int, int]] = []
    rss_peak = [0]
    sampling = threading.Event()

    def sample(t0: float) -> None:
        while not sampling.wait(2.0):
            try:
                depth = client.llen("responder"), client.llen("responder-urgent")
                held = client.hlen("unacked")
            except redis.RedisError:
                continue
            samples.append((time.monotonic() - t0, depth[0], depth[1], held, parts.worker_rss()))
            rss_peak[0] = max(rss_peak[0], samples[-1][4])

    interval = args.seconds / args.deliveries
    t0 = time.monotonic()
    threading.Thread(target=sample, args=(t0,), daemon=True).start()
    events = sorted(
        [("kill", args.kill_worker_at), ("redis", args.restart_redis_at)], key=lambda e: e[1] or 0
    )
    pending_events = [e for e in events if e[1] is not None]
    with ThreadPoolExecutor(max_workers=32) as pool:
        p0_done = False
        for n in range(args.deliveries):
            due = t0 + n * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elapsed = time.monotonic() - t0
            while pending_events and elapsed >= pending_events[0][1]:
                what, _ = pending_events.pop(0)
                if what == "kill":
                    print(f"  {elapsed:5.1f} s: SIGKILL to the worker", flush=True)
                    parts.kill("worker")
                else:
                    print(f"  {elapsed:5.1f} s: Redis restarted", flush=True)
                    pool.submit(own_redis.restart)
            if not p0_done and elapsed >= args.seconds / 2:
                p0 = alert(
                    "PositionChecksumMismatch",
                    {
                        "category": "data-corruption",
                        "service": "risk-manager",
                        "severity": "critical",
                    },
                    "p0-storm-00000001",
                    "position checksum mismatch",
                )
                pool.submit(send, json.dumps(group_payload(P0_GROUP, [p0])).encode(), True)
                p0_done = True
            group = groups[n % len(groups)]
            alerts_of[group].append(storm_alert(n, flow=FLOW_ALERT in group))
            pool.submit(send, json.dumps(group_payload(group, alerts_of[group][-20:])).encode())
    sent_for = time.monotonic() - t0

    # Drain: until every incident has its first note and the queues are empty, or the timeout.
    first_note_of: dict[str, float] = {}
    drained_at = None
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if drained(client, pagerduty, incidents):
            drained_at = time.monotonic() - t0
            break
    sampling.set()
    for key, incident in incidents.items():
        if (at := first_note(pagerduty, incident)) is not None:
            first_note_of[key] = at
    p0_incident = incidents[P0_GROUP]
    p0_notes = pagerduty.notes_for(p0_incident)
    p0_calls = [
        c
        for c in pagerduty.calls
        if c.path == f"/incidents/{p0_incident}/notes" and c.method == "POST" and c.status < 300
    ]
    p0_first = next((c.at for c in p0_calls if "/first_note]" in c.body["note"]["content"]), None)
    p0_evidence = next(
        (c.at for c in p0_calls if "/evidence_note]" in c.body["note"]["content"]), None
    )
    refs = Counter(
        note["content"].rsplit("[ref ", 1)[-1]
        for incident in incidents.values()
        for note in pagerduty.notes_for(incident)
    )
    rest = [
        c.at for c in pagerduty.calls if not c.path.startswith("/_fake") and c.path != "/v2/enqueue"
    ]
    fates = delivery_fates(client, accepted)
    return {
        "statuses": statuses,
        "p99": pct(latencies, 0.99),
        "sent_for": sent_for,
        "p0_first": (p0_first - p0_sent[0]) if p0_first and p0_sent else None,
        "p0_evidence": (p0_evidence - p0_sent[0]) if p0_evidence and p0_sent else None,
        "p0_notes": len(p0_notes),
        # On the wall clock, as the SMTP server stamps what it accepts.
        "p0_sent_wall": time.time() - (time.monotonic() - p0_sent[0]) if p0_sent else None,
        "first_notes": len(first_note_of),
        "incidents": len(incidents),
        # The P3 incidents' last first note (the P0's is reported on its own).
        "first_note_latest": max(
            (at for key, at in first_note_of.items() if key != P0_GROUP), default=t0
        )
        - t0,
        "coalesced": int(client.hget("responder:stats", "coalesced") or 0),
        "dead": int(client.zcard("responder:dead-letters")),
        "busiest": busiest_window(rest),
        "requests": len(rest),
        "duplicates": sum(n - 1 for n in refs.values() if n > 1),
        "samples": samples,
        "drained_at": drained_at,
        "redis_after": int(client.info("memory")["used_memory"]),
        "rss_peak": rss_peak[0],
        "fates": fates,
        "merged": len(merged_sources := {s for _, ss in pagerduty.merges for s in ss}),
        "without_first_note": len(incidents) - len(first_note_of) - len(merged_sources),
        "restarts": dict(parts.restarts),
        "t0": t0,
        "p0_sent_at": p0_sent[0] if p0_sent else None,
    }


def print_slack(
    slack: FakeSlack, incidents: dict[str, str], t0: float, p0_sent: float | None
) -> None:
    """Print when the incidents' Slack threads came out, the P0's first, and Slack's pace."""
    parents = {
        m.text.rsplit("[ref slack:", 1)[1].split("/", 1)[0]: m
        for m in slack.messages
        if not m.thread_ts and m.text.rstrip().endswith("/parent]")
    }
    posted_at = {c.params.get("text", ""): c.at for c in slack.calls if c.at}
    p0 = parents.get(incidents[P0_GROUP])
    p0_at = posted_at.get(p0.text) if p0 is not None else None
    others = [posted_at[m.text] - t0 for i, m in parents.items()
              if i != incidents[P0_GROUP] and m.text in posted_at]  # fmt: skip
    dupes = Counter(m.text.rsplit("[ref slack:", 1)[1] for m in slack.messages)
    per_second: Counter[tuple[str, int]] = Counter(
        (str(c.params.get("channel")), int(c.at))
        for c in slack.calls
        if c.method == "chat.postMessage" and c.status == 200 and not c.error
    )
    limited = sum(1 for c in slack.calls if c.status == 429)
    print(
        f"slack: {len(parents)} of {len(incidents)} threads, "
        f"{sum(1 for m in slack.messages if m.thread_ts)} replies, "
        f"{sum(1 for m in slack.messages if not m.thread_ts) - len(parents)} other posts; "
        f"duplicates {sum(n - 1 for n in dupes.values() if n > 1)}; "
        f"most posts to one channel in one second {max(per_second.values(), default=0)}; "
        f"429s {limited}"
    )
    if p0_at is not None and p0_sent is not None:
        print(f"slack: the P0's thread {p0_at - p0_sent:.1f} s after its alert was sent")
    if others:
        print(
            f"slack: P3 threads from {min(others):.0f} s to {max(others):.0f} s after the storm "
            f"began (median {pct(others, 0.5):.0f} s)"
        )


def drained(client: redis.Redis, pagerduty: FakePagerDuty, incidents: dict[str, str]) -> bool:
    """Return whether a storm has drained: both lanes empty, no message held by a worker, and
    every incident first-noted or merged into another (False while Redis does not answer)."""
    try:
        depth = client.llen("responder") + client.llen("responder-urgent")
        held = client.hlen("unacked")
    except redis.RedisError:
        return False
    merged = {source for _, sources in list(pagerduty.merges) for source in sources}
    noted = sum(
        1 for i in incidents.values() if i in merged or first_note(pagerduty, i) is not None
    )
    return depth == 0 and held == 0 and noted == len(incidents)


def first_note(pagerduty: FakePagerDuty, incident: str) -> float | None:
    for call in pagerduty.calls:
        if (
            call.method == "POST"
            and call.path == f"/incidents/{incident}/notes"
            and call.status < 300
        ):
            if "/first_note]" in call.body["note"]["content"]:
                return call.at
    return None


def delivery_fates(client: redis.Redis, accepted: list[str]) -> Counter[str]:
    fates: Counter[str] = Counter()
    with client.pipeline(transaction=False) as pipe:
        for delivery_id in accepted:
            pipe.hget(f"responder:delivery:{delivery_id}", "pipeline")
        states = pipe.execute()
    for state in states:
        if state is None:
            fates["missing"] += 1
            continue
        pipeline = json.loads(state)
        fates[
            pipeline.split(" ", 1)[0] if pipeline.startswith(("joined", "not")) else pipeline
        ] += 1
    return fates


def print_report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    mib = 1024 * 1024
    print(
        f"storm: {args.deliveries} deliveries in {args.seconds:g} s over {args.groups} groups, "
        f"targets {args.targets}"
        + (
            f", worker SIGKILL at {args.kill_worker_at:g} s"
            if args.kill_worker_at is not None
            else ""
        )
        + (
            f", Redis restart at {args.restart_redis_at:g} s"
            if args.restart_redis_at is not None
            else ""
        )
    )
    codes = ", ".join(f"{n} x {code or 'error'}" for code, n in sorted(r["statuses"].items()))
    print(f"intake: {codes}; p99 {r['p99'] * 1000:.1f} ms; sent in {r['sent_for']:.1f} s")
    first = f"{r['p0_first']:.2f} s" if r["p0_first"] is not None else "never"
    evidence = f"{r['p0_evidence']:.2f} s" if r["p0_evidence"] is not None else "never"
    print(f"P0: first note {first}, evidence note {evidence} after its webhook")
    print(
        f"first notes: {r['first_notes']} of {r['incidents']} incidents "
        f"(the last P3 one {r['first_note_latest']:.1f} s into the storm); "
        f"merged into another by correlation: {r['merged']}; "
        f"neither after draining: {r['without_first_note']}"
    )
    if args.kill_worker_at is not None:
        after = r["first_note_latest"] - args.kill_worker_at
        print(f"the last first note came {after:.1f} s after the worker's death")
    restarted = ", ".join(f"{k} {v}x" for k, v in r["restarts"].items()) or "none"
    print(f"parts restarted (they died): {restarted}")
    print(
        f"deliveries coalesced: {r['coalesced']}; dead-lettered: {r['dead']}; "
        f"duplicate notes: {r['duplicates']}"
    )
    print(f"PagerDuty: {r['requests']} REST requests, at most {r['busiest']} in any 60 s")
    drained = (
        f"{r['drained_at']:.1f} s"
        if r["drained_at"] is not None
        else "not within the drain timeout"
    )
    print(f"drained at {drained}")
    print("queue depth (s: routine / urgent / held by workers):")
    for when, routine, urgent, held, _ in r["samples"][::5]:
        print(f"  {when:6.1f}: {routine:6d} / {urgent:4d} / {held:4d}")
    print(
        f"Redis memory {r['redis_before'] / mib:.1f} MiB before, "
        f"{r['redis_after'] / mib:.1f} MiB after; "
        f"largest worker process {r['rss_peak'] / mib:.0f} MiB"
    )
    print("2xx deliveries by fate: " + ", ".join(f"{k} {v}" for k, v in sorted(r["fates"].items())))


if __name__ == "__main__":
    main()
