"""Intake throughput: the responder's Alertmanager endpoint against the floor, under gunicorn.

Both apps run under the same gunicorn settings on loopback and are driven by wrk with a new
alert (a new fingerprint) in every request, so the responder does all its work each time:
authentication, validation, classification, the durable dedup record and enqueueing. The
floor is a bare Flask handler doing json.loads and one Redis LPUSH. Prints requests/s,
p50 and p99 latency for each, their ratio, and the CPU time per request of the gunicorn
workers and of Redis (a steadier view than requests/s on a machine whose speed drifts).

    .venv/bin/python bench/intake.py [--duration 10] [--connections 8] [--rounds 3]
        [--replica [--wait-ms 500]]

Needs wrk (Debian package `wrk`) and Redis (BENCH_REDIS_URL, default db 14, which it clears of
responder keys). With --replica it starts a redis-server primary and one replica of its own
instead, and measures a third app in each round: the responder with
RESPONDER_REDIS_WAIT_REPLICAS=1 (each 2xx waits for the replica to hold the delivery). Numbers
depend on the machine: compare runs on the same one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING

import psutil
import redis

if TYPE_CHECKING:
    from tests.support.redis_servers import RedisServer

PROJECT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
QUEUE = "responder-bench"

WRK_SCRIPT = """
local counter = 0
local template = [[%s]]
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  counter = counter + 1
  local id = tostring(math.random(1, 1000000000)) .. "-" .. tostring(counter)
  return wrk.format(nil, "/webhooks/alertmanager", nil, string.gsub(template, "FINGERPRINT", id))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    app: str, env: dict[str, str], workers: int, extra: list[str] | None = None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--config", "python:webhooks.gunicorn_config", "--log-level", "warning", *(extra or []),
        app,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"gunicorn for {app} did not start")


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    # A 30 s timeout: a request a starved server answers late counts in the latencies, not
    # as a socket error left out of them.
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    timeouts = re.search(r"Socket errors: .*timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "timeouts": float(timeouts.group(1)) if timeouts else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each measuring both apps")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", help="override gunicorn_config's worker class")
    parser.add_argument(
        "--replica",
        action="store_true",
        help="own primary + one replica; also measure the responder with WAIT for it",
    )
    parser.add_argument("--wait-ms", type=int, default=500, help="RESPONDER_REDIS_WAIT_MS")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    servers = _own_primary_and_replica() if args.replica else []
    redis_url = (
        servers[0].url
        if servers
        else os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    client = redis.Redis.from_url(redis_url)

    payload = json.loads((PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json").read_text())
    payload["alerts"][0]["fingerprint"] = "FINGERPRINT"
    payload["groupKey"] = '{}:{alertname="SignalLatencyHigh", bench="FINGERPRINT"}'
    body = json.dumps(payload).replace("]]", "] ]")
    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % (body, TOKEN))
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()

    env = {
        "RESPONDER_REDIS_URL": redis_url,
        "RESPONDER_ALERTMANAGER_TOKEN": TOKEN,
        "RESPONDER_QUEUE": QUEUE,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "BENCH_REDIS_URL": redis_url,
    }
    responder = "webhooks:create_app()"
    apps: dict[str, tuple[str, dict[str, str]]] = {
        "responder": (responder, {}),
        "floor": ("bench.floor_app:create_app()", {}),
    }
    if servers:
        wait = {"RESPONDER_REDIS_WAIT_REPLICAS": "1", "RESPONDER_REDIS_WAIT_MS": str(args.wait_ms)}
        apps["resp+WAIT"] = (responder, wait)
    redis_process = _local_redis(client)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in apps}
    for round_number in range(args.rounds):
        # The machine's speed drifts over minutes: each round measures every app back to back,
        # in a rotating order, and the ratios are taken within the round.
        shift = round_number % len(apps)
        order = list(apps.items())[shift:] + list(apps.items())[:shift]
        for name, (app, app_env) in order:
            _clean(client)
            extra = ["--worker-class", args.worker_class] if args.worker_class else []
            process, url = start_gunicorn(app, {**env, **app_env}, args.workers, extra)
            try:
                run_wrk(url, script, 2, args.connections)  # warm up
                cpu = CpuMeter(process, redis_process)
                result = run_wrk(url, script, args.duration, args.connections)
                result.update(cpu.per_request(result["rps"] * args.duration))
                results[name].append(result)
            finally:
                process.terminate()
                process.wait(timeout=20)
    _clean(client)
    for server in servers:
        server.stop()

    summary = {
        name: {key: median(r[key] for r in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    worker_class = args.worker_class or "gunicorn_config's"
    print(
        f"intake benchmark: gunicorn {args.workers} workers ({worker_class} worker class), "
        "wrk 1 thread "
        f"{args.connections} connections, {args.duration}s x {args.rounds} rounds, "
        f"{os.cpu_count()} cores (medians)"
        + (f"; own primary + 1 replica, WAIT 1 {args.wait_ms} ms" if servers else "")
    )
    print(
        f"{'app':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'CPU us/req: workers':>20} {'redis':>6}"
    )
    for name, row in summary.items():
        print(
            f"{name:<10} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['non_2xx']:>8.0f} {row['workers_cpu_us']:>20.0f} {row['redis_cpu_us']:>6.0f}"
        )
    for name in apps:
        if name == "floor":
            continue
        pairs = zip(results[name], results["floor"], strict=True)
        ratios = [ours["rps"] / floor["rps"] for ours, floor in pairs]
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        goal = "; goal >= 0.75" if name == "responder" else ""
        print(f"ratio {name}/floor: {median(ratios):.2f} (median of rounds: {each}{goal})")


def _own_primary_and_replica() -> list[RedisServer]:
    """Start a primary and one replica of the bench's own; return both, the primary first."""
    if str(PROJECT) not in sys.path:  # run as a script (`make bench`): tests/ is not on the path
        sys.path.insert(0, str(PROJECT))
    from tests.support.redis_servers import RedisServer, wait_until

    directory = Path(tempfile.mkdtemp(prefix="bench-intake-redis-"))
    primary = RedisServer(directory / "primary").start()
    replica = RedisServer(directory / "replica", replica_of=primary.port).start()
    wait_until(
        lambda: replica.client().info("replication").get("master_link_status") == "up",
        20,
        "the replica to sync",
    )
    return [primary, replica]


class CpuMeter:
    """CPU seconds the gunicorn workers and Redis spend during one measurement."""

    def __init__(self, server: subprocess.Popen, redis_process: psutil.Process | None) -> None:
        self.workers = psutil.Process(server.pid).children()
        self.redis = redis_process
        self.start = self._now()

    def per_request(self, requests: float) -> dict[str, float]:
        """Return microseconds of CPU per request for the workers and for Redis (0 if remote)."""
        workers, redis_cpu = (b - a for a, b in zip(self.start, self._now(), strict=True))
        return {
            "workers_cpu_us": workers / requests * 1e6,
            "redis_cpu_us": redis_cpu / requests * 1e6,
        }

    def _now(self) -> tuple[float, float]:
        def used(process: psutil.Process) -> float:
            times = process.cpu_times()
            return times.user + times.system

        redis_cpu = used(self.redis) if self.redis else 0.0
        return sum(used(worker) for worker in self.workers), redis_cpu


def _local_redis(client: redis.Redis) -> psutil.Process | None:
    """Return the Redis server's process when it runs on this machine, else None."""
    try:
        return psutil.Process(int(client.info("server")["process_id"]))
    except (psutil.Error, KeyError, ValueError):
        return None


def _clean(client: redis.Redis) -> None:
    for key in client.scan_iter("responder:*", count=1000):
        client.delete(key)
    client.delete(QUEUE, "bench:floor")


if __name__ == "__main__":
    main()
