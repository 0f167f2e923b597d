"""The demo world's own rules: the simulator honours stop-trading and a restart mends the scenario
that stopped a service; the demo's approval note is the webhook PagerDuty would send."""

from __future__ import annotations

import json
import time

from demo.approve import Person, annotated_event, signature, status_event
from demo.simulator import Simulator
from tests.fakes.pagerduty import FakePagerDuty
from triage import note_commands
from triage.models import parse_pagerduty
from webhooks.auth import pagerduty_signature_problem


def test_no_order_goes_out_while_trading_is_stopped_and_signals_still_flow() -> None:
    sim = Simulator()
    sim.tick(time.time())
    executions, signals = len(sim.executions), len(sim.signals)
    sim.stop_trading()
    for _ in range(3):
        sim.tick(time.time())
    assert len(sim.executions) == executions
    assert len(sim.signals) == signals + 3
    assert sim.trading_status()["trading"] == "stopped" and sim.trading_status()["since"]
    sim.resume_trading()
    sim.tick(time.time())
    assert len(sim.executions) == executions + 1
    assert sim.trading_status() == {"trading": "active"}
    assert sim.emergency_calls == ["stop-trading", "resume-trading"]


def test_orders_go_out_unchecked_while_the_risk_manager_is_down() -> None:
    sim = Simulator()
    sim.inject("risk-manager-down")
    sim.tick(time.time())
    assert sim.executions[-1]["risk_checked"] is False


def test_starting_the_stopped_service_ends_its_scenario_and_watchers_hear_each_change() -> None:
    sim = Simulator()
    heard: list[tuple[str, bool]] = []
    sim.watchers.append(lambda service, running: heard.append((service, running)))
    sim.inject("risk-manager-down")
    assert not sim.running("risk-manager") and "risk-manager-down" in sim.active
    sim.start_service("risk-manager")
    assert sim.running("risk-manager") and "risk-manager-down" not in sim.active
    assert heard == [("risk-manager", False), ("risk-manager", True)]


def test_a_scenario_that_stopped_several_services_lasts_until_each_runs_again() -> None:
    sim = Simulator()
    sim.inject("complete-outage")
    sim.start_service("risk-manager")
    assert "complete-outage" in sim.active and sim.running("risk-manager")
    assert not sim.running("gui-gateway")


def test_stopping_a_service_leaves_other_scenarios_alone() -> None:
    sim = Simulator()
    sim.inject("checksum-mismatch")
    sim.stop_service("risk-manager")
    sim.start_service("risk-manager")
    # A restart mends a process, not the data it stored.
    assert sim.active == {"checksum-mismatch"}


def test_the_approval_note_is_the_webhook_pagerduty_sends_for_a_persons_note() -> None:
    person = Person(id="PDANA01", name="Dana Whitfield")
    content = "Evidence checked, go ahead.\n/approve act-1a2b3c4d"
    raw = json.dumps(annotated_event("PINC0001", "NOTE7", content, person)).encode()
    assert pagerduty_signature_problem(raw, signature(raw, "s3cret"), ["s3cret"]) is None
    assert pagerduty_signature_problem(raw, signature(raw, "other"), ["s3cret"]) is not None
    event = parse_pagerduty(json.loads(raw))
    assert event.event_type == "incident.annotated"
    assert (event.note_incident_id, event.note_id, event.note_content) == (
        "PINC0001",
        "NOTE7",
        content,
    )
    assert event.agent["id"] == "PDANA01" and event.agent["type"] == "user_reference"
    [command] = note_commands.parse(event.note_content)
    assert command == note_commands.Approve("act-1a2b3c4d")


def test_the_resolve_webhook_is_the_event_pagerduty_sends_for_the_fakes_incident() -> None:
    # The world relays each incident the fake PagerDuty resolves as PagerDuty's v3 event: the
    # receiver reads the incident from it as from PagerDuty's own.
    pagerduty = FakePagerDuty()
    incident_id = pagerduty.add_incident("key-1", "[FIRING:1] RiskManagerDown")
    pagerduty.incidents[incident_id]["status"] = "resolved"
    event = parse_pagerduty(json.loads(json.dumps(status_event(pagerduty.incidents[incident_id]))))
    assert event.event_type == "incident.resolved"
    assert event.incident is not None
    assert (event.incident.id, event.incident.status, event.incident.incident_key) == (
        incident_id,
        "resolved",
        "key-1",
    )
    assert event.incident.title == "[FIRING:1] RiskManagerDown"
    assert event.incident.service == "EAFIX"
