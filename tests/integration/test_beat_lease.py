"""Beat on every host, ticking once: real beat processes sharing one Redis, and the SLA auditor.

Beats tick every half second with a 3 s lease (tests/integration/test_sla_beat.py's
environment); ticks are counted in each beat's own log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from prometheus_client import generate_latest

from tasks.backlog import read_backlog
from tasks.celery_app import make_celery
from tasks.cli import main
from tasks.lanes import urgent_queue
from tasks.runtime import Runtime
from tasks.settings import settings_from_env
from tasks.sla import audit
from tasks.store.beat_lease import lease_holder
from tasks.store.sla_clock import SlaClock
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_sla_beat import (
    QUEUE,
    Processes,
    acknowledge_deadline,
    beat_env,  # noqa: F401 - a fixture
    escalations,
    processes,  # noqa: F401 - a fixture
)
from tests.support import wait_for
from webhooks.metrics import ReceiverMetrics

pytestmark = pytest.mark.integration


@pytest.fixture
def quiet_queues(redis_client: redis.Redis) -> Iterator[None]:
    """Drop the ticks no worker consumed in these tests, before and after."""
    queues = [QUEUE, urgent_queue(QUEUE)]
    redis_client.delete(*queues)
    yield
    redis_client.delete(*queues)


def holder_pid(client: redis.Redis) -> int | None:
    holder = lease_holder(client)
    return holder.pid if holder else None


def test_of_two_beats_against_one_redis_only_the_lease_holder_sends_ticks(
    processes: Processes,  # noqa: F811
    redis_client: redis.Redis,
    quiet_queues: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = processes.beat("beat-a")
    processes.beat("beat-b")
    assert "beat: standing by; the beat lease is held by" in processes.log_text("beat-b")
    wait_for(lambda: processes.ticks("beat-a") >= 10, what="ten ticks from the lease holder")
    assert processes.ticks("beat-b") == 0
    assert holder_pid(redis_client) == first.pid
    # `responder status` names the holder, from another process, as an operator would ask.
    monkeypatch.setenv("RESPONDER_REDIS_URL", processes.env["RESPONDER_REDIS_URL"])
    human = CliRunner().invoke(main, ["status"])
    assert human.exit_code == 0, human.output
    assert f"(pid {first.pid}) holds the beat lease since" in human.output
    data = json.loads(CliRunner().invoke(main, ["status", "--json"]).output)
    assert data["beat"]["pid"] == first.pid and data["beat"]["host"] == socket.gethostname()


def test_a_beat_killed_with_sigkill_is_taken_over_by_the_standby_once_its_lease_runs_out(
    processes: Processes,  # noqa: F811
    redis_client: redis.Redis,
    quiet_queues: None,
) -> None:
    first = processes.beat("beat-a")
    second = processes.beat("beat-b")
    wait_for(lambda: processes.ticks("beat-a") >= 2, what="the holder to tick")
    processes.kill(first)
    ticks_of_the_dead = processes.ticks("beat-a")
    wait_for(lambda: processes.ticks("beat-b") >= 2, timeout=60, what="the standby to take over")
    assert holder_pid(redis_client) == second.pid
    assert "beat: holding the beat lease" in processes.log_text("beat-b")
    assert processes.ticks("beat-a") == ticks_of_the_dead
    # The ticks the dead holder may have left unsent go at once, not a period later.
    took_over = processes.log_text("beat-b").split("beat: took the beat lease over; sending now:")
    assert len(took_over) == 2
    assert "sla-tick" in took_over[1].splitlines()[0]


def test_a_beat_stopped_cleanly_gives_the_lease_up_to_the_standby(
    processes: Processes,  # noqa: F811
    redis_client: redis.Redis,
    quiet_queues: None,
) -> None:
    first = processes.beat("beat-a")
    second = processes.beat("beat-b")
    os.killpg(first.pid, signal.SIGTERM)
    first.wait(timeout=30)
    assert "beat: gave up the beat lease" in processes.log_text("beat-a")
    wait_for(lambda: processes.ticks("beat-b") >= 1, what="the standby to take over")
    assert holder_pid(redis_client) == second.pid


def test_the_auditor_queues_again_a_due_deadline_whose_action_message_was_lost(
    processes: Processes,  # noqa: F811
    pagerduty: FakePagerDuty,
    redis_client: redis.Redis,
) -> None:
    settings = settings_from_env(processes.env)
    rt = Runtime(settings)
    app = make_celery(settings)
    incident = pagerduty.add_incident("k-audit-lost")
    clock = SlaClock(redis_client)
    now = datetime.now(UTC)
    clock.register([acknowledge_deadline(incident, now - timedelta(seconds=1))])
    # A tick claimed it, sent its action and released the claim; the message was then lost.
    claims = clock.claim_due(now)
    clock.release(claims)
    processes.worker()

    def send(name: str, args: list[Any], queue: str) -> None:
        app.send_task(name, args=args, queue=queue)

    assert audit.audit(rt, now, send) == 0  # within the grace: the action may still run
    later = now + timedelta(seconds=settings.sla_audit_grace_seconds + 1)
    assert audit.audit(rt, later, send) == 1
    wait_for(lambda: len(pagerduty.notes_for(incident)) == 1, what="the re-queued action")
    wait_for(lambda: clock.unacted(later + timedelta(days=1), 0) == [], what="the due log empty")
    assert escalations(pagerduty, incident) == 1
    assert read_backlog(rt).sla_requeued == 1
    metrics = ReceiverMetrics()
    metrics.watch_backlog(lambda: read_backlog(rt))
    assert b"responder_sla_deadlines_requeued_total 1.0" in generate_latest(metrics.registry)


def test_the_auditor_leaves_a_deadline_alone_once_its_action_has_run(
    redis_client: redis.Redis,
) -> None:
    clock = SlaClock(redis_client)
    now = datetime.now(UTC)
    deadline = acknowledge_deadline("P-AUDIT-DONE", now - timedelta(seconds=1))
    clock.register([deadline])
    [claim] = clock.claim_due(now)
    assert asdict(claim.deadline) == asdict(deadline)
    clock.acting(deadline, now + timedelta(seconds=100))  # a try of the action, later
    assert clock.unacted(now + timedelta(seconds=150), 60) == []  # touched 50 s before
    [(found, before)] = clock.unacted(now + timedelta(seconds=161), 60)
    assert (found, before) == (deadline, 0)
    assert clock.unacted(now + timedelta(seconds=161), 60) == []  # taken once
    clock.acted(deadline)
    assert clock.unacted(now + timedelta(days=1), 0) == []
