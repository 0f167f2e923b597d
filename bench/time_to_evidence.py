"""Time to evidence: webhook -> first-response note and webhook -> evidence note, over N alerts.

Runs the demo world on loopback (simulator, Prometheus, Alertmanager, the responder under
gunicorn with a Celery worker, the fake PagerDuty) and posts N alerts straight to the
responder, one after the other, each for an incident that already exists. Prints p50/p95 of
both latencies and the evidence latency over the slowest collector's own time (the cost of
the fan-out, the bundle and the notes on top of the slowest diagnostic).

    .venv/bin/python bench/time_to_evidence.py [--alerts 50]

Needs Redis (BENCH_REDIS_URL, default db 10, which it clears of responder keys) and the
Debian packages prometheus and prometheus-alertmanager.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import redis
import requests

from demo.world import TOKEN, World

PROJECT = Path(__file__).resolve().parent.parent


def percentile95(values: list[float]) -> float:
    return quantiles(values, n=20)[18] if len(values) >= 2 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=50)
    args = parser.parse_args()
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("responder:*"):
        client.delete(key)
    world = World(Path(tempfile.mkdtemp(prefix="bench-evidence-")), redis_url).start()
    template = json.loads((PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json").read_text())
    first_latency, evidence_latency, ratios = [], [], []
    try:
        time.sleep(3)  # let Prometheus scrape a few times
        for n in range(args.alerts):
            payload = json.loads(json.dumps(template))
            payload["groupKey"] = f'{{}}:{{alertname="SignalLatencyHigh", bench="{n}"}}'
            payload["alerts"][0]["fingerprint"] = f"bench-{n}-{time.time_ns()}"
            key = hashlib.sha256(payload["groupKey"].encode()).hexdigest()
            incident = world.pagerduty.add_incident(key, "bench")
            # Each alert measured as the first of its kind: a check another incident made in
            # the last seconds would be shared (tasks/shared_checks.py) and cost nothing.
            for check in client.scan_iter("responder:check:*"):
                client.delete(check)
            sent = time.monotonic()
            answer = requests.post(
                f"{world.urls['responder']}/webhooks/alertmanager",
                json=payload,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            answer.raise_for_status()
            deadline = sent + 60
            path = f"/incidents/{incident}/notes"
            # By their markers, not their order: the world's SLA clock may note in between.
            first = evidence = None
            while evidence is None and time.monotonic() < deadline:
                time.sleep(0.01)
                notes = [
                    c for c in list(world.pagerduty.calls)
                    if c.method == "POST" and c.path == path and c.status == 200
                ]  # fmt: skip
                first = next((c for c in notes if "/first_note]" in note_of(c)), None)
                evidence = next((c for c in notes if "/evidence_note]" in note_of(c)), None)
            if first is None or evidence is None:
                raise SystemExit(f"alert {n}: no evidence note within 60 s")
            first_latency.append(first.at - sent)
            evidence_latency.append(evidence.at - sent)
            bundle = world.directory / "bundles" / f"{answer.json()['delivery_id']}-r1"
            manifest = json.loads((bundle / "manifest.json").read_text())
            slowest = max(c["duration_seconds"] for c in manifest["collectors"])
            ratios.append((evidence.at - sent) / slowest)
    finally:
        world.stop()
    print(f"time to evidence: {args.alerts} alerts, one at a time, {os.cpu_count()} cores")
    print(f"{'':22} {'p50':>8} {'p95':>8}")
    for label, values in (
        ("first-response note", first_latency),
        ("evidence note", evidence_latency),
    ):
        print(f"{label:<22} {median(values):>7.2f}s {percentile95(values):>7.2f}s")
    print(
        f"evidence / slowest collector: p50 {median(ratios):.2f}, p95 {percentile95(ratios):.2f}"
        " (goal <= 1.3)"
    )


def note_of(call: Any) -> str:
    """Return the text of a note the fake PagerDuty received."""
    return str(((call.body or {}).get("note") or {}).get("content", ""))


if __name__ == "__main__":
    main()
