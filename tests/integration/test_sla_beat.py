"""The SLA clock with real beat and worker processes: once per deadline, across restarts.

The deadlines here are due on the real clock, seconds from now; beat ticks every half second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tasks.store.sla_clock import Deadline, SlaClock
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import PROJECT, wait_for
from tests.support.workers import start_worker

QUEUE = "responder-beat"
TICK_SECONDS = 0.5
LEASE_SECONDS = 2


@pytest.fixture
def beat_env(responder_env: dict[str, str], redis_url: str) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        **responder_env,
        "RESPONDER_QUEUE": QUEUE,
        "RESPONDER_SLA_TICK_SECONDS": str(TICK_SECONDS),
        "RESPONDER_SLA_CLAIM_LEASE": str(LEASE_SECONDS),
        "RESPONDER_LOG_TICKS": "1",  # the tests count ticks in beat's and the worker's logs
        # A beat killed by a test hands over to the next one within this long.
        "RESPONDER_BEAT_LEASE_SECONDS": "3",
    }
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    yield env
    client.delete(QUEUE)


class Processes:
    """Beat and worker processes of one test, each in its own session; all stopped at the end."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.running: list[subprocess.Popen[bytes]] = []

    def worker(self) -> subprocess.Popen[bytes]:
        process = start_worker(self.env, self.folder / "worker.log", "beat-worker", concurrency=3)
        self.running.append(process)
        return process

    def beat(self, name: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO",
            "--schedule", str(self.folder / f"{name}-schedule"),
            "--pidfile", str(self.folder / f"{name}.pid"),
        ]  # fmt: skip
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, cwd=PROJECT, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        self.running.append(process)
        wait_for(lambda: self.started(name), what=f"beat {name} to tick or stand by")
        return process

    def log_text(self, name: str) -> str:
        log = self.folder / f"{name}.log"
        return log.read_text() if log.exists() else ""

    def started(self, name: str) -> bool:
        """Return True once beat `name` ticks, or stands by while another holds the lease."""
        return self.ticks(name) >= 1 or "beat: standing by" in self.log_text(name)

    def ticks(self, name: str) -> int:
        """Return how many SLA ticks beat `name` has sent so far."""
        return self.log_text(name).count("(tasks.pipeline.sla_tick)")

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def processes(beat_env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    running = Processes(beat_env, tmp_path)
    yield running
    running.stop_all()


def acknowledge_deadline(incident: str, due: datetime) -> Deadline:
    return Deadline(incident, "acknowledge", due.isoformat(), "P1", f"run-{incident}", "RiskDown")


def escalations(pagerduty: FakePagerDuty, incident: str) -> int:
    return sum(
        1 for c in pagerduty.calls if c.method == "PUT" and c.path == f"/incidents/{incident}"
    )


def worker_count(processes: Processes, task: str, outcome: str) -> int:
    """Return how many `task` runs the workers' log shows `outcome` for (received, succeeded)."""
    log = processes.folder / "worker.log"
    text = log.read_text() if log.exists() else ""
    return sum(1 for line in text.splitlines() if f"{task}[" in line and outcome in line)


def wait_for_ticks(processes: Processes, more: int = 4) -> None:
    """Let the worker run `more` further ticks and every action they enqueued, so a second
    action for a deadline would have happened by now."""
    start = worker_count(processes, "tasks.pipeline.sla_tick", "succeeded")
    client = redis.Redis.from_url(processes.env["RESPONDER_REDIS_URL"])

    def settled() -> bool:
        ticks = worker_count(processes, "tasks.pipeline.sla_tick", "succeeded")
        received = worker_count(processes, "tasks.pipeline.sla_action", "received")
        done = worker_count(processes, "tasks.pipeline.sla_action", "succeeded")
        return ticks >= start + more and received == done and client.llen(QUEUE) == 0

    wait_for(settled, what=f"{more} more ticks and their actions")


def test_two_beats_act_once_per_deadline(
    processes: Processes, pagerduty: FakePagerDuty, redis_client
) -> None:
    incidents = [pagerduty.add_incident(f"k-beat-{n}") for n in range(10)]
    processes.worker()
    processes.beat("beat-a")
    processes.beat("beat-b")
    due = datetime.now(UTC) + timedelta(seconds=1)
    SlaClock(redis_client).register(acknowledge_deadline(i, due) for i in incidents)
    for incident in incidents:
        wait_for(lambda i=incident: len(pagerduty.notes_for(i)) == 1, what=f"{incident} noted")
    wait_for_ticks(processes)
    assert [escalations(pagerduty, i) for i in incidents] == [1] * 10
    assert [len(pagerduty.notes_for(i)) for i in incidents] == [1] * 10
    assert [pagerduty.incidents[i]["escalation_level"] for i in incidents] == [2] * 10
    assert SlaClock(redis_client).pending() == []


def test_a_deadline_missed_while_everything_was_down_fires_once_on_restart(
    processes: Processes, pagerduty: FakePagerDuty, redis_client
) -> None:
    incident = pagerduty.add_incident("k-beat-restart")
    worker = processes.worker()
    beat = processes.beat("beat-a")
    processes.kill(beat)
    processes.kill(worker)
    # Registered once both are dead: registered before the kills, a busy machine that took
    # over two seconds to kill them let the live ones claim it first.
    due = datetime.now(UTC) + timedelta(seconds=1)
    SlaClock(redis_client).register([acknowledge_deadline(incident, due)])
    time.sleep(max((due - datetime.now(UTC)).total_seconds(), 0) + 1)  # due passes; nothing runs
    assert escalations(pagerduty, incident) == 0
    assert [d.incident_id for d in SlaClock(redis_client).pending()] == [incident]

    processes.worker()
    processes.beat("beat-b")
    wait_for(lambda: len(pagerduty.notes_for(incident)) == 1, what="the missed deadline's action")
    wait_for_ticks(processes)
    assert escalations(pagerduty, incident) == 1
    [note] = pagerduty.notes_for(incident)
    assert note["content"].startswith(
        "[P1 (PagerDuty: P2)] SLA missed: not acknowledged within 15m"
    )


def test_a_tick_that_died_after_claiming_is_recovered_after_the_lease(
    processes: Processes, pagerduty: FakePagerDuty, redis_client
) -> None:
    incident = pagerduty.add_incident("k-beat-lease")
    clock = SlaClock(redis_client)
    clock.register([acknowledge_deadline(incident, datetime.now(UTC) - timedelta(seconds=1))])
    # A tick claims the deadline and dies before enqueueing its action.
    [claimed] = clock.claim_due(datetime.now(UTC))
    assert claimed.deadline.incident_id == incident and clock.pending() == []
    processes.worker()
    processes.beat("beat-a")
    wait_for(lambda: len(pagerduty.notes_for(incident)) == 1, what="the recovered action")
    wait_for_ticks(processes, more=LEASE_SECONDS * 4)
    assert escalations(pagerduty, incident) == 1
    assert len(pagerduty.notes_for(incident)) == 1
