"""The one PagerDuty module: a single attempt per call, failures carrying what retries need."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tasks.gateways.pagerduty import IncidentRef, OutboxGateway, PagerDutyUnavailable, make_gateway
from tasks.gateways.request_budget import RequestBudget
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty


@pytest.fixture
def gateway(settings: Settings, pagerduty: FakePagerDuty):
    return make_gateway(settings, lambda text: text)


@pytest.mark.parametrize("status", [429, 500, 503, 400, 404])
def test_an_error_comes_back_after_one_request(
    gateway, pagerduty: FakePagerDuty, status: int
) -> None:
    incident = IncidentRef(pagerduty.add_incident("k"), "k")
    pagerduty.fail_next(status, method="POST", path_suffix="/notes")
    with pytest.raises(PagerDutyUnavailable) as caught:
        gateway.create_note(incident, "hello")
    assert caught.value.status == status
    assert str(caught.value) == f"PagerDuty POST notes failed: HTTP {status}"
    assert [c.status for c in pagerduty.calls] == [status]  # the client did not retry by itself
    if status == 429:
        assert caught.value.headers["ratelimit-reset"] == "1"
    gateway.create_note(incident, "hello")
    assert [n["content"] for n in pagerduty.notes_for(incident.id)] == ["hello"]


def test_notes_can_be_read_back_to_find_a_lost_attempt(gateway, pagerduty: FakePagerDuty) -> None:
    incident = IncidentRef(pagerduty.add_incident("k"), "k")
    gateway.create_note(incident, "first\n[ref r1/first_note]")
    assert gateway.note_contents(incident) == ["first\n[ref r1/first_note]"]


def test_the_request_budget_holds_calls_back_across_workers(
    settings: Settings, pagerduty: FakePagerDuty, redis_client
) -> None:
    budget = RequestBudget(redis_client, "test-budget", limit=2, window_seconds=1.0)
    gateway = make_gateway(settings, lambda text: text, budget)
    other_worker = make_gateway(replace(settings), lambda text: text, budget)
    incident = IncidentRef(pagerduty.add_incident("k"), "k")
    gateway.create_note(incident, "one")
    other_worker.create_note(incident, "two")
    with pytest.raises(PagerDutyUnavailable) as caught:
        gateway.create_note(incident, "three")
    assert caught.value.status == 429 and str(caught.value).endswith("local rate limit")
    assert caught.value.held_back and caught.value.surely_not_applied
    assert 0 < float(caught.value.headers["ratelimit-reset"]) <= 1.0
    assert len(pagerduty.notes_for(incident.id)) == 2  # the third never left this machine


WRITES: dict[str, Callable[[Any, IncidentRef], None]] = {
    "priority": lambda gateway, incident: gateway.set_priority(incident, "PRIO0"),
    "escalate": lambda gateway, incident: gateway.escalate(incident, 2),
    "urgency": lambda gateway, incident: gateway.set_urgency(incident, "low"),
    "status-update": lambda gateway, incident: gateway.status_update(incident, "Still degraded."),
    "responder-request": lambda gateway, incident: gateway.request_responders(
        incident, "PREQ001", [("PESC001", "escalation_policy_reference")], "Join, please."
    ),
}


@pytest.mark.parametrize("kind", WRITES)
def test_the_outbox_records_each_write_as_pagerduty_receives_it(
    gateway, pagerduty: FakePagerDuty, tmp_path: Path, kind: str
) -> None:
    incident = IncidentRef(pagerduty.add_incident("k"), "k")
    WRITES[kind](gateway, incident)
    [sent] = pagerduty.calls
    assert sent.status < 300, sent.error  # the fake checks each body against PagerDuty's spec

    WRITES[kind](OutboxGateway(tmp_path, "responder@eafix.example"), incident)
    [written] = [json.loads(p.read_text()) for p in tmp_path.glob(f"*-{kind}-*.json")]
    assert (written["method"], written["path"], written["json"]) == (
        sent.method,
        sent.path,
        sent.body,
    )


def test_a_429_from_pagerduty_holds_every_worker_back_until_its_reset(
    settings: Settings, pagerduty: FakePagerDuty, redis_client
) -> None:
    budget = RequestBudget(redis_client, "test-budget-429", limit=100)
    gateway = make_gateway(settings, lambda text: text, budget)
    other_worker = make_gateway(replace(settings), lambda text: text, budget)
    incident = IncidentRef(pagerduty.add_incident("k"), "k")
    pagerduty.fail_next(429, 1, headers={"ratelimit-reset": "30"})
    with pytest.raises(PagerDutyUnavailable) as answered:
        gateway.create_note(incident, "one")
    assert not answered.value.held_back and answered.value.status == 429
    with pytest.raises(PagerDutyUnavailable) as held:
        other_worker.create_note(incident, "two")
    assert held.value.held_back  # never sent: PagerDuty said to wait
    assert [c.status for c in pagerduty.calls] == [429]
