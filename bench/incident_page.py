"""The incident pages under an alert storm: what one request costs with many incidents open.

Writes `--incidents` open incidents with running SLA clocks (as a storm leaves them), and one
full incident with a bundle and a long history; then drives, under gunicorn on loopback with
wrk, the list page (`GET /incidents`, one page of 50), the incident page and its JSON poll
(`state.json`, which every open page asks for every 5 s). Prints requests/s, p50 and p99 and
the Redis commands each request costs.

    .venv/bin/python -m bench.incident_page [--incidents 1000] [--duration 5] [--connections 4]

Needs wrk (Debian package `wrk`) and Redis (BENCH_REDIS_URL, default db 12, which it clears of
responder keys). Numbers depend on the machine: compare runs on the same one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench.intake import run_wrk, start_gunicorn
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.store.sla_clock import Deadline
from tests.support.incident_page import make_incident

TOKEN = "bench-console-token"
SECRET = "bench-link-secret"
GET_SCRIPT = 'wrk.headers["Authorization"] = "Bearer %s"\n'


def fill(rt: Runtime, count: int, now: datetime) -> str:
    """Write `count` open incidents with clocks and one full incident; return its page path."""
    for number in range(count):
        incident_id = f"PSTORM{number:05d}"
        priority = ("P0", "P1", "P2", "P3")[number % 4]
        started = now - timedelta(seconds=count - number)
        rt.incidents.mark_clock(incident_id, priority, started.isoformat(), f"{incident_id}-r1")
        due = {
            "acknowledge": started + timedelta(minutes=5),
            "resolve": started + timedelta(hours=4),
            "next_update": started + timedelta(minutes=30),
        }
        rt.clock.register(
            Deadline(incident_id, kind, at.isoformat(), priority) for kind, at in due.items()
        )
    made = make_incident(rt, "PSTORMFULL", now, update_in=timedelta(minutes=30))
    for number in range(300):  # a long night: the poll reads the history's tail
        rt.incidents.log(made.incident_id, f"note added {number}", "someone", now)
    return made.path


def commands_per_request(client: redis.Redis, url: str, path: str, headers: dict) -> int:
    """Return how many Redis commands one request sends to our database (Redis MONITOR).

    MONITOR, not INFO commandstats: other clients of the same server would be counted too.
    """
    import requests

    db = client.connection_pool.connection_kwargs.get("db", 0)
    sentinel = f"bench-incident-page-{time.monotonic_ns()}"
    for _ in range(6):  # each gunicorn worker's first request loads the policy and connects
        requests.get(url + path, headers=headers, timeout=10).raise_for_status()
    with client.monitor() as monitor:
        requests.get(url + path, headers=headers, timeout=10).raise_for_status()
        client.echo(sentinel)
        count = 0
        while True:
            command = monitor.next_command()
            if sentinel in command["command"]:
                return count
            count += command["db"] == db


def main() -> None:
    """Fill Redis, start gunicorn, measure the three routes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (scripts/install-test-services wrk)")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("responder:*"):
        client.delete(key)
    workdir = Path(tempfile.mkdtemp(prefix="bench-incident-page-"))
    settings = Settings(
        redis_url=redis_url,
        bundle_dir=workdir / "bundles",
        link_secret=Secret(SECRET),
        console_token=Secret(TOKEN),
    )
    started = time.monotonic()
    page = fill(Runtime(settings), args.incidents, datetime.now(UTC))
    print(f"wrote {args.incidents} open incidents in {time.monotonic() - started:.1f} s")
    script = workdir / "get.lua"
    script.write_text(GET_SCRIPT % TOKEN)
    metrics = workdir / "metrics"
    metrics.mkdir()
    env = {
        "RESPONDER_REDIS_URL": redis_url,
        "RESPONDER_LINK_SECRET": SECRET,
        "RESPONDER_CONSOLE_TOKEN": TOKEN,
        "RESPONDER_BUNDLE_DIR": str(settings.bundle_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    process, url = start_gunicorn("webhooks:create_app()", env, args.workers)
    routes = {
        "list page (50 of them)": "/incidents",
        "incident page": page,
        "state.json poll": page.replace("?", "/state.json?", 1),
    }
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for label, path in routes.items():
            commands = commands_per_request(client, url, path, headers)
            result = run_wrk(url + path, script, args.duration, args.connections)
            print(
                f"{label:<24} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                f"p99 {result['p99_ms']:7.2f} ms  non-2xx {result['non_2xx']:.0f}  "
                f"redis commands/request {commands}"
            )
    finally:
        process.terminate()
        process.wait(timeout=20)
        for key in client.scan_iter("responder:*"):
            client.delete(key)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
