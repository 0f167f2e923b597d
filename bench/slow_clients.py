"""Slow clients against the production receiver: does a normal Alertmanager load still flow?

Starts gunicorn as `responder run` and compose do (the settings of webhooks/gunicorn_config.py,
2 workers), against Redis, and drives it with wrk posting a new Alertmanager alert in every
request (bench/intake.py's load). It measures that load quiet, then again while `--slow`
connections are held open the way finding 2 of issue 24 held them: `POST /webhooks/pagerduty`
announcing `Content-Length: 100000` with a well-formed (but wrong) signature, a few bytes of
body, then silence. A slow connection the server closes is opened again at once, so that
`--slow` are held for the whole measurement. Meanwhile /healthz is asked every half second.

Prints p50/p99 and requests/s of both runs, the p99 ratio (goal: at most 2), the /healthz
times, and how the server answered the slow connections. Asserts nothing about time.

    .venv/bin/python -m bench.slow_clients [--worker-class gevent|gthread|sync] [--slow 50]

Loopback only; every connection and the server are closed at the end; each phase is bounded
by --duration. Needs wrk and Redis (BENCH_REDIS_URL, default db 14, cleared of responder keys).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from statistics import median

import redis
import requests

from bench.intake import PROJECT, QUEUE, TOKEN, WRK_SCRIPT, _clean, run_wrk, start_gunicorn

SLOW_HEAD = (
    "POST /webhooks/pagerduty HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Content-Type: application/json\r\n"
    "X-PagerDuty-Signature: v1=" + "0" * 64 + "\r\n"
    "Content-Length: 100000\r\n"
    "\r\n"
    '{"event": '
).encode()


class SlowClients:
    """Hold `count` slow-body connections open until stopped, reopening each one closed."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.answers: Counter[str] = Counter()
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(SLOW_HEAD)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        self.opened += 1

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            for _ in range(self.count):
                self._open(selector)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    sock = key.fileobj
                    try:
                        head = sock.recv(200)  # type: ignore[union-attr]
                    except OSError:
                        head = b""
                    status = head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "closed"
                    self.answers[status] += 1
                    selector.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    if not self._stop.is_set():
                        self._open(selector)
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()


def healthz_times(url: str, stop: threading.Event, times: list[float]) -> None:
    """Ask /healthz every half second until stopped; record each answer's time (30 s cap)."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            requests.get(f"{url}/healthz", timeout=30).raise_for_status()
            times.append(time.perf_counter() - started)
        except requests.RequestException:
            times.append(float("inf"))
        stop.wait(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-class", help="override gunicorn_config's (sync, gthread, ...)")
    parser.add_argument("--threads", type=int, help="override gunicorn_config's threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow", type=int, default=50, help="slow-body connections held")
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--body-read-seconds", default="", help="RESPONDER_BODY_READ_SECONDS")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (scripts/install-test-services wrk)")
    if not 0 < args.slow <= 500 or not 0 < args.duration <= 120:
        raise SystemExit("--slow from 1 to 500, --duration from 1 to 120 s")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    client = redis.Redis.from_url(redis_url)

    payload = json.loads((PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json").read_text())
    payload["alerts"][0]["fingerprint"] = "FINGERPRINT"
    payload["groupKey"] = '{}:{alertname="SignalLatencyHigh", bench="FINGERPRINT"}'
    workdir = Path(tempfile.mkdtemp(prefix="bench-slow-"))
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % (json.dumps(payload).replace("]]", "] ]"), TOKEN))
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
    env = {
        "RESPONDER_REDIS_URL": redis_url,
        "RESPONDER_ALERTMANAGER_TOKEN": TOKEN,
        "RESPONDER_PAGERDUTY_WEBHOOK_SECRETS": "bench-secret",
        "RESPONDER_QUEUE": QUEUE,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    if args.body_read_seconds:
        env["RESPONDER_BODY_READ_SECONDS"] = args.body_read_seconds
    extra = []
    if args.worker_class:
        extra += ["--worker-class", args.worker_class]
    if args.threads:
        extra += ["--threads", str(args.threads)]

    _clean(client)
    process, url = start_gunicorn("webhooks:create_app()", env, args.workers, extra)
    port = int(url.rsplit(":", 1)[1])
    try:
        run_wrk(url, script, 2, args.connections)  # warm up
        quiet = run_wrk(url, script, args.duration, args.connections)
        stop, health = threading.Event(), []
        with SlowClients(port, args.slow) as slow:
            time.sleep(1)  # every slow connection is open and waiting before the load starts
            watcher = threading.Thread(target=healthz_times, args=(url, stop, health))
            watcher.start()
            loaded = run_wrk(url, script, args.duration, args.connections)
            stop.set()
            watcher.join(timeout=35)
    finally:
        process.terminate()
        process.wait(timeout=30)
        _clean(client)

    worker = args.worker_class or "gunicorn_config's"
    print(
        f"slow clients: gunicorn {args.workers} workers ({worker} worker class), "
        f"wrk {args.connections} connections x {args.duration}s, {args.slow} slow-body "
        f"connections held, {os.cpu_count()} cores"
    )
    print(f"{'phase':<14} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} {'non-2xx':>8} {'timeouts':>9}")
    for name, row in (("quiet", quiet), (f"{args.slow} slow", loaded)):
        print(
            f"{name:<14} {row['rps']:>8.0f} {row['p50_ms']:>9.2f} {row['p99_ms']:>9.2f} "
            f"{row['non_2xx']:>8.0f} {row['timeouts']:>9.0f}"
        )
    if loaded["rps"] > 0:
        ratio = loaded["p99_ms"] / quiet["p99_ms"]
        print(f"p99 with slow clients / quiet: {ratio:.2f} (goal <= 2)")
    else:
        print("p99 with slow clients / quiet: no request answered while the slow clients held on")
    answered = [t for t in health if t != float("inf")]
    if answered:
        print(
            f"/healthz meanwhile: {len(answered)} of {len(health)} answered, median "
            f"{median(answered) * 1000:.1f} ms, slowest {max(answered) * 1000:.1f} ms"
        )
    else:
        print(f"/healthz meanwhile: none of {len(health)} answered within 30 s")
    said = ", ".join(f"{status}: {n}" for status, n in sorted(slow.answers.items())) or "none"
    print(f"slow connections: {slow.opened} opened; server's answers: {said}")


if __name__ == "__main__":
    main()
