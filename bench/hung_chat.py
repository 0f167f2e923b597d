"""First notes with Slack and SMTP hung: P0 and P1 alerts while chat and mail never answer.

Production shape on loopback, as bench/storm.py: its own Redis, gunicorn, a Celery worker on
every queue (concurrency 4), an urgent worker (concurrency 2, the queues `responder run` gives
it), beat, the schema-validating fake PagerDuty with an incident seeded per alert group and
healthy catalog targets. Slack's API URL and the SMTP server are sockets that accept the
connection and never answer, so every Slack post and e-mail waits out its whole timeout.
P0 and P1 alerts arrive in turn, one every `--interval` seconds; each incident's Slack thread,
the trading desk's e-mail and management's e-mail are what a hung server would hold.

Prints, per priority, the time from the POST to the first note PagerDuty received.

    .venv/bin/python -m bench.hung_chat [--alerts 12] [--interval 0.5] [--chat hung|none]

Needs Debian's redis-server (make test-services installs it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import requests

from bench.storm import (
    TOKEN,
    HangingTargets,
    HealthyTargets,
    OwnRedis,
    Parts,
    alert,
    first_note,
    free_port,
    group_payload,
    incident_key,
    pct,
    responder_env,
    storm_policy,
)
from tasks.lanes import urgent_worker_queues
from tests.fakes.pagerduty import FakePagerDuty

PD_TOKEN = "hung-chat-pd-token"
# One P0 and one P1 rule of the built-in policy, by the labels Alertmanager sends.
ALERTS = {
    "P0": ("PositionChecksumMismatch", {"category": "data-corruption", "service": "risk-manager"}),
    "P1": ("PositionReconciliationFailed", {"category": "reconciliation", "service": "eafix-db"}),
}


def main() -> None:
    """Start the parts, send the alerts, print the first-note times per priority."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=12, help="P0 and P1 alerts, in turn")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between alerts")
    parser.add_argument("--chat", choices=["hung", "none"], default="hung")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for notes")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="bench-hung-chat-"))
    own_redis = OwnRedis(directory)
    own_redis.start()
    pagerduty = FakePagerDuty(token=PD_TOKEN).start()
    targets = HealthyTargets()
    slack, smtp = HangingTargets(), HangingTargets()  # accept, never answer
    port = free_port()
    env = responder_env(directory, storm_policy(targets), own_redis, pagerduty)
    if args.chat == "hung":
        smtp_port = smtp.base.rsplit(":", 1)[1]
        env.update(
            RESPONDER_SLACK_TOKEN="xoxb-hung-chat",
            # https: the TLS handshake itself waits for an answer that never comes.
            RESPONDER_SLACK_API_URL=f"https://127.0.0.1:{slack.base.rsplit(':', 1)[1]}/api/",
            RESPONDER_SMTP_HOST="127.0.0.1",
            RESPONDER_SMTP_PORT=smtp_port,
            RESPONDER_SMTP_STARTTLS="0",
        )
    parts = Parts(directory, env, port, urgent_worker_queues("responder"))
    try:
        parts.start_all()
        sent = send_alerts(port, pagerduty, args.alerts, args.interval)
        report(pagerduty, sent, args, slack, smtp)
    finally:
        parts.stop_all()
        for server in (targets, slack, smtp):
            server.stop()
        pagerduty.stop()
        own_redis.stop()
        print(f"logs: {directory}")


def send_alerts(
    port: int, pagerduty: FakePagerDuty, count: int, interval: float
) -> list[tuple[str, str, float]]:
    """POST `count` alerts, P0 and P1 in turn; return (priority, incident, sent at) of each."""
    url = f"http://127.0.0.1:{port}/webhooks/alertmanager"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sent = []
    for n in range(count):
        priority = "P0" if n % 2 == 0 else "P1"
        name, labels = ALERTS[priority]
        group = f'{{}}:{{alertname="{name}", bench="hung-chat-{n}"}}'
        incident = pagerduty.add_incident(incident_key(group), name)
        body = group_payload(group, [alert(name, {**labels, "bench": str(n)}, f"fp{n}", name)])
        began = time.monotonic()
        answer = requests.post(url, data=json.dumps(body), headers=headers, timeout=30)
        answer.raise_for_status()
        sent.append((priority, incident, began))
        time.sleep(interval)
    return sent


def report(
    pagerduty: FakePagerDuty,
    sent: list[tuple[str, str, float]],
    args: argparse.Namespace,
    slack: HangingTargets,
    smtp: HangingTargets,
) -> None:
    """Wait for every first note (or `--wait`), then print the times per priority."""
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if all(first_note(pagerduty, incident) is not None for _, incident, _ in sent):
            break
        time.sleep(0.2)
    time.sleep(2.0)  # the Slack and e-mail tasks of the last alerts reach the hung servers
    print(
        f"hung chat bench: {len(sent)} alerts (P0 and P1 in turn, every {args.interval:g} s), "
        f"Slack and SMTP {args.chat}; connections held: Slack {len(slack.held)}, "
        f"SMTP {len(smtp.held)}"
    )
    for priority in ("P0", "P1"):
        times, missing = [], 0
        for p, incident, began in sent:
            if p != priority:
                continue
            at = first_note(pagerduty, incident)
            if at is None:
                missing += 1
            else:
                times.append(at - began)
        if times:
            print(
                f"  {priority} first note: median {pct(times, 0.5):.2f} s, "
                f"max {max(times):.2f} s over {len(times)}"
                + (f"; {missing} without a first note after {args.wait:g} s" if missing else "")
            )
        else:
            print(f"  {priority} first note: none within {args.wait:g} s")


if __name__ == "__main__":
    main()
