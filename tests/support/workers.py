"""The one way the tests start, stop and kill a real Celery worker, and take back what it held.

Each worker runs in its own session, so that one signal reaches its main process and every
pool child, and writes to a log of the test's own that the tests read (received, succeeded).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

from tasks import recovery
from tasks.store import worker_marks
from tests.support import PROJECT, wait_for

START_SECONDS = 120  # generous: a worker imports Celery and matplotlib, slow on a busy machine
STOP_SECONDS = 60  # a warm shutdown lets running tasks end; past this it is killed


def worker_command(name: str, concurrency: int = 1) -> list[str]:
    """Return the command of a test's Celery worker (no gossip, no mingle: it starts fast)."""
    return [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "INFO",
        "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
        "--hostname", f"{name}@%h",
    ]  # fmt: skip


def start_worker(
    env: dict[str, str],
    log: Path,
    name: str,
    concurrency: int = 1,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start a worker named `name` logging to `log` (appended), with `extra` arguments (beat
    inside it: `-B`, its queues); return once it is ready."""
    already = log.read_bytes().count(b" ready.") if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*worker_command(name, concurrency), *extra],
            cwd=PROJECT,
            env={**os.environ, **env},
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    wait_for(
        lambda: log.read_bytes().count(b" ready.") > already or process.poll() is not None,
        timeout=START_SECONDS,
        what=f"the worker {name} to start",
    )
    if process.poll() is not None:
        pytest.fail(f"the worker {name} exited at start:\n{log.read_text()[-3000:]}")
    return process


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker a test started: a warm shutdown, then SIGKILL past STOP_SECONDS."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        kill_worker(process)


def kill_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and every pool child: it dies mid-task, holding its messages."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone with its whole group
        pass
    process.wait(timeout=STOP_SECONDS)


def give_back_held(client: redis.Redis, name: str, time_limit: float) -> bool:
    """Give back what the dead worker `name` held, as beat's `recover` does once its heartbeat
    has expired, but only messages delivered over `time_limit` seconds ago; return True once
    every message it held is back (poll it with wait_for).

    Every one, not the first: a worker may take a message moments before it dies, which comes
    of age a poll or two after the others; given back alone, those others would leave it held
    for ever (a kill test's fresh worker waited 90 s for a `gather` left so).

    Not sooner: a task comes back to a second worker only once the dead attempt is past its hard
    time limit, the invariant kombu's visibility timeout (above every time limit) and `recover`
    (after a heartbeat's expiry) keep; a second attempt before it finds the first's effects
    still pending. The heartbeat itself (recovery.HEARTBEAT_TTL_SECONDS) need not be waited for:
    the worker is dead, its heartbeat is removed here.
    """
    client.delete(worker_marks.worker_key(f"{name}@{socket.gethostname()}"))
    # reclaim_orphans takes messages delivered GRACE_SECONDS before the `now` it is given.
    now = time.time() + recovery.GRACE_SECONDS - (time_limit + 1)  # +1: delivered, then begun
    recovery.reclaim_orphans(client, now)
    # What a living worker took is in its heartbeat within HEARTBEAT_SECONDS; the rest is the
    # dead worker's, not yet of age.
    unacked = {tag.decode() for tag in client.hkeys(recovery.UNACKED_KEY)}
    return not unacked - recovery.live_tags(client)
