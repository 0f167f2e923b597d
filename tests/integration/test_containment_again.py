"""Safety Measures while the cause persists, live: stop-trading approved and run by a real
worker, trading resumed at the gateway while RiskManagerDown still fires, and the SLA clock's
`stop_again` deadline acted on by that worker: stop-trading is proposed again, once per
resumption; once the alert clears, the watch ends.

The test ticks the clock itself, for its own incident only, as beat's `sla_tick` does (claim,
send `sla_action`, release): a beat would also act on deadlines a slow task of an earlier test
registered after that test ended, and post to incidents the fake PagerDuty has forgotten."""

from __future__ import annotations

import copy
import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner

from demo.simulator import Simulator
from tasks.celery_app import make_celery
from tasks.cli import main
from tasks.lanes import deadline_queue
from tasks.names import SLA_ACTION
from tasks.settings import settings_from_env
from tasks.store.sla_clock import STOP_AGAIN, SlaClock
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, sample_payload, wait_for
from tests.support.workers import start_worker, stop_worker
from triage.policy import builtin_text
from webhooks import create_app

QUEUE = "responder-containment-again"
AGAIN = "Trading resumed while the cause still fires"
LOG = "TEST_WORKER_LOG"  # where the fixture's environment names the worker's log


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """Run the six simulated EAFIX services (the gateway's emergency endpoints)."""
    simulator = Simulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def env(
    sim: Simulator, responder_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Run a worker on the built-in policy pointed at the simulator, the market open every
    day (this test must not depend on the day it runs) and trading read again every second;
    yield its environment."""
    policy = yaml.safe_load(builtin_text())
    for service in policy["catalog"]:
        service["health_url"] = f"{sim.url(service['name'])}/healthz"
    policy["market_hours"].update(
        opens={"day": "sunday", "time": "00:00"}, closes={"day": "saturday", "time": "23:59"},
        holidays=[],
    )  # fmt: skip
    policy["actions"]["stop_again"]["every"] = "1s"
    policy["correlation"]["mode"] = "off"
    folder = tmp_path_factory.mktemp("containment-again")
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    worker_env = {
        **responder_env,
        "RESPONDER_POLICY": str(path),
        "RESPONDER_QUEUE": QUEUE,
    }
    client = redis.Redis.from_url(worker_env["RESPONDER_REDIS_URL"])
    for key in client.scan_iter(f"{QUEUE}*"):  # what an earlier run left on its queues
        client.delete(key)
    log = folder / "worker.log"
    process = start_worker(worker_env, log, "again", concurrency=3)
    yield {**worker_env, LOG: str(log)}
    stop_worker(process)


@contextmanager
def ticking(env: dict[str, str], incident: str) -> Iterator[None]:
    """Tick the SLA clock every 0.3 s, as beat does, acting on `incident`'s stop_again only."""
    app = make_celery(settings_from_env(env))
    clock = SlaClock(redis.Redis.from_url(env["RESPONDER_REDIS_URL"]))
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.3):
            for claim in clock.claim_due(datetime.now(UTC)):
                found = claim.deadline
                if found.incident_id == incident and found.kind == STOP_AGAIN:
                    queue = deadline_queue(QUEUE, found.kind, found.priority)
                    app.send_task(SLA_ACTION, args=[asdict(found)], queue=queue)
                clock.release([claim])

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


def risk_manager_down(starts: datetime) -> dict[str, Any]:
    """Return RiskManagerDown firing since `starts`: a P0 (risk management failure)."""
    payload = sample_payload(groupKey='{}:{alertname="RiskManagerDown", test="again"}')
    alert = payload["alerts"][0]
    alert["labels"] = {"alertname": "RiskManagerDown", "category": "risk-management",
                       "service": "risk-manager", "severity": "critical"}  # fmt: skip
    alert["annotations"] = {"summary": "Risk manager is down"}
    alert.update(startsAt=starts.isoformat(), fingerprint="again-rm")
    payload.update(groupLabels={"alertname": "RiskManagerDown"}, commonLabels=alert["labels"])
    payload["commonAnnotations"] = alert["annotations"]
    return payload


def notes(pagerduty: FakePagerDuty, incident: str, text: str) -> list[str]:
    """Return the incident's notes containing `text`, oldest first."""
    return [n["content"] for n in pagerduty.notes_for(incident) if text in n["content"]]


def wait_notes(pagerduty: FakePagerDuty, incident: str, text: str, count: int = 1) -> list[str]:
    """Wait until `count` notes on the incident contain `text`; return them."""
    return wait_for(
        lambda: len(found := notes(pagerduty, incident, text)) >= count and found,
        timeout=120,
        what=f"{count} note(s) saying {text!r}",
    )


def approve(env: dict[str, str], proposal: str) -> None:
    """Approve a proposal at the terminal, as the on-call engineer."""
    result = CliRunner().invoke(main, ["action", "approve", proposal, "--as", "oncall"], env=env)
    assert result.exit_code == 0, result.output


def stopped_by(
    env: dict[str, str], pagerduty: FakePagerDuty, incident: str, proposal: str, count: int
) -> None:
    """Approve a stop-trading proposal and wait for the `count`-th stop to be done."""
    approve(env, proposal)
    wait_notes(pagerduty, incident, "[ACTION] stop-trading on gui-gateway: done", count)


def poster(env: dict[str, str]) -> Any:
    """Return a poster of Alertmanager notifications to a receiver on the worker's queue."""
    client = create_app(settings_from_env(env)).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return lambda payload: client.post("/webhooks/alertmanager", json=payload, headers=headers)


def test_safety_measures_trading_resumed_while_the_cause_persists_is_stopped_again_once_each_time(
    env: dict[str, str],
    sim: Simulator,
    pagerduty: FakePagerDuty,
    redis_client: redis.Redis,
) -> None:
    sim.trading_stopped = False
    firing = risk_manager_down(datetime.now(UTC))
    key = hashlib.sha256(firing["groupKey"].encode()).hexdigest()
    incident = pagerduty.add_incident(key, "[FIRING:1] RiskManagerDown")
    post = poster(env)
    assert post(firing).status_code == 202
    [evidence] = wait_notes(pagerduty, incident, " evidence: ")
    first = re.search(r"stop-trading on gui-gateway \((act-[0-9a-f]{8})\)", evidence)
    assert first is not None, evidence

    with ticking(env, incident):
        # Stopped; then a person resumes trading at the gateway while RiskManagerDown still fires.
        stopped_by(env, pagerduty, incident, first.group(1), 1)
        assert sim.trading_stopped
        sim.trading_stopped = False
        [again] = wait_notes(pagerduty, incident, AGAIN)
        second = re.search(r"is proposed again \((act-[0-9a-f]{8})\)", again)
        assert second is not None and second.group(1) != first.group(1), again
        assert f"stop-trading ran before ({first.group(1)}, approved by oncall)" in again
        assert "trading=active" in again and "no longer passes (HTTP 200, trading=active)" in again
        assert "Still firing: RiskManagerDown." in again

        # Approved and run again, then resumed a second time: one more proposal, a new one.
        stopped_by(env, pagerduty, incident, second.group(1), 2)
        assert len(notes(pagerduty, incident, AGAIN)) == 1  # nothing more while it stayed stopped
        sim.trading_stopped = False
        thrice = wait_notes(pagerduty, incident, AGAIN, 2)
        third = re.search(r"is proposed again \((act-[0-9a-f]{8})\)", thrice[1])
        assert third is not None and third.group(1) not in (first.group(1), second.group(1))

        # The alert clears: the watch ends (no next read is registered), and nothing is proposed.
        stopped_by(env, pagerduty, incident, third.group(1), 3)
        cleared = copy.deepcopy(firing)
        cleared["status"] = "resolved"
        cleared["alerts"][0].update(status="resolved", endsAt=datetime.now(UTC).isoformat())
        assert post(cleared).status_code == 202
        log = Path(env[LOG])
        wait_for(
            lambda: "the cause cleared: the watch ends" in log.read_text(),
            timeout=120,
            what="the worker's read of trading to find the alert cleared",
        )
    pending = SlaClock(redis_client).pending()
    assert not [d for d in pending if d.incident_id == incident and d.kind == STOP_AGAIN]
    assert len(notes(pagerduty, incident, AGAIN)) == 2
