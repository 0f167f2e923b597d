"""The backlog in sight: /metrics and `responder status` show queues, budget, dead letters."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from click.testing import CliRunner

from tasks.backlog import read_backlog
from tasks.cli import main
from tasks.lanes import Lane, urgent_queue
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.store.dead_letters import DeadLetter
from tasks.store.deliveries import DELIVERY_ID
from tests.support import TOKEN, sample_payload
from webhooks import create_app

QUEUE = "responder-backlog-test"  # no worker reads it: what is posted stays queued


@pytest.fixture
def ours(settings: Settings, redis_client: redis.Redis, monkeypatch) -> Iterator[Settings]:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RESPONDER_QUEUE", QUEUE)
    redis_client.delete(QUEUE, urgent_queue(QUEUE))
    yield replace(settings, queue=QUEUE)
    redis_client.delete(QUEUE, urgent_queue(QUEUE))


def metric(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name}{labels} not in /metrics"
    return float(found.group(1))


def test_metrics_and_status_show_the_waiting_work_the_budget_and_the_dead_letters(
    ours: Settings,
) -> None:
    client = create_app(ours).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # P1: it waits on the urgent lane.
    posted_at = time.time()
    answer = client.post("/webhooks/alertmanager", json=sample_payload(), headers=headers)
    assert answer.status_code == 202
    rt = Runtime(ours)
    rt.budget.take()
    letter = DeadLetter("t-1", "tasks.pipeline.gather", ["r"], QUEUE, "HTTP 400", time.time())
    rt.dead_letters.add(letter)

    text = client.get("/metrics").get_data(as_text=True)
    waited = time.time() - posted_at
    assert metric(text, "responder_queue_depth", '{lane="urgent"}') == 1
    assert metric(text, "responder_queue_depth", '{lane="routine"}') == 0
    # The delivery id dates it to the second: it has waited since then, no longer.
    age = metric(text, "responder_oldest_waiting_seconds", '{lane="urgent"}')
    assert 0 <= age <= waited + 1
    assert metric(text, "responder_oldest_waiting_seconds", '{lane="routine"}') == 0
    # On a clock of the test's own, the age is exact: the delivery was received 90 s ago.
    stamp = DELIVERY_ID.search(answer.get_json()["delivery_id"].encode())
    assert stamp is not None
    received = datetime.strptime(stamp["received"].decode(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    later = read_backlog(rt, received + timedelta(seconds=90))
    assert later.oldest_seconds == {Lane.URGENT: 90.0, Lane.ROUTINE: None}
    assert metric(text, "responder_pagerduty_requests_remaining") <= 959
    assert metric(text, "responder_dead_letters") == 1
    assert metric(text, "responder_deliveries_coalesced_total") == 0

    human = CliRunner().invoke(main, ["status"])
    assert human.exit_code == 0, human.output
    assert "urgent   lane: 1 queued, oldest waiting" in human.output
    assert "dead letters: 1 (responder deliveries --failed)" in human.output
    assert re.search(r"^workers: \d+ alive, holding \d+ tasks$", human.output, re.MULTILINE)
    data = json.loads(CliRunner().invoke(main, ["status", "--json"]).output)
    assert data["queued"] == {"routine": 0, "urgent": 1} and data["dead_letters"] == 1
