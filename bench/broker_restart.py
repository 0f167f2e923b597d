"""A real worker across Redis restarts in a row: does it stay up, and how soon does it work again?

Starts its own redis-server (AOF, on a free port) and a Celery worker as in production
(`celery -A tasks worker`, concurrency 2). Each try: the worker holds a message it has not
acknowledged (a task waiting for a 300 s countdown: the state that made the worker exit before
tasks/broker_guard.py), Redis is SHUTDOWN and started again on the same files, and the bench
measures how long until the worker is connected again and until a task sent after the restart
has run. Prints one line per try and a summary.

    .venv/bin/python -m bench.broker_restart [--tries 5] [--down 1.0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from tasks.celery_app import make_celery
from tasks.settings import settings_from_env
from tests.support.redis_servers import RedisServer, wait_until

PROJECT = Path(__file__).resolve().parent.parent
HEARTBEAT = "responder:heartbeat"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--down", type=float, default=1.0, help="seconds Redis stays down")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="bench-broker-restart-"))
    server = RedisServer(directory / "redis", aof=True).start()
    env = {
        **os.environ,
        "RESPONDER_REDIS_URL": server.url,
        "RESPONDER_BUNDLE_DIR": str(directory / "bundles"),
        "RESPONDER_OUTBOX_DIR": str(directory / "outbox"),
        "RESPONDER_LOG_TICKS": "1",  # the heartbeat's "received" lines are what it waits for
    }
    log_path = directory / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "INFO",
        "--concurrency", "2", "--without-gossip", "--without-mingle", "--hostname", "bench@%h",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        worker = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=log)
    rows: list[tuple[int, bool, float, float]] = []
    try:
        wait_until(lambda: b"ready." in log_path.read_bytes(), 60, "the worker to start")
        app = make_celery(settings_from_env(env))
        state = server.client()
        for number in range(1, args.tries + 1):
            held = log_path.read_bytes().count(b"received")
            app.send_task("tasks.pipeline.heartbeat", countdown=300)  # held, unacknowledged

            def holding(before: int = held) -> bool:
                return log_path.read_bytes().count(b"received") > before

            wait_until(holding, 30, "the worker to hold the task")
            connected = log_path.read_bytes().count(b"Connected to redis")

            try:
                state.shutdown()
            except redis.RedisError:  # the server closes the connection as it goes
                pass
            assert server.process is not None
            server.process.wait(timeout=30)
            time.sleep(args.down)
            server.start()
            back = time.monotonic()

            def reconnected(before: int = connected) -> bool:
                return log_path.read_bytes().count(b"Connected to redis") > before

            try:
                wait_until(lambda: reconnected() or worker.poll() is not None, 60, "a reconnect")
            except RuntimeError:
                pass
            alive = worker.poll() is None and reconnected()
            reconnect = time.monotonic() - back
            task_after = float("nan")
            if alive:
                state.delete(HEARTBEAT)
                sent = time.monotonic()
                app.send_task("tasks.pipeline.heartbeat")
                wait_until(lambda: state.get(HEARTBEAT), 60, "a task after the restart")
                task_after = time.monotonic() - sent
            rows.append((number, alive, reconnect, task_after))
            print(
                f"try {number}: worker {'up' if alive else 'EXITED'}, connected again "
                f"{reconnect:.1f} s after Redis was back, a new task ran in {task_after:.2f} s",
                flush=True,
            )
            if not alive:
                break
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.stop()
    crashed = log_path.read_bytes().count(b"Unrecoverable error")
    up = sum(1 for row in rows if row[1])
    print(
        f"broker restarts: worker up after {up} of {args.tries} in a row "
        f"(Redis down {args.down:g} s each), 'Unrecoverable error' in its log: {crashed}; "
        f"reconnect at most {max(r[2] for r in rows):.1f} s; log: {log_path}"
    )


if __name__ == "__main__":
    main()
