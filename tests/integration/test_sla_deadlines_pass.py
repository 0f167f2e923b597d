"""The runbook's Incident Metrics on the controllable clock: an incident acknowledged in time
whose respond and resolve deadlines then pass, as PagerDuty receives it (a reminder for the
respond deadline, an escalation and a note for the resolve deadline); and the CTO's call."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support.clock import NEW_YORK, Timeline, record_event, record_trigger, respond, tick
from triage.models import Priority
from triage.policy import Contact, Management

MONDAY_10AM = datetime(2026, 12, 7, 10, 0, tzinfo=NEW_YORK)  # market and business hours
ACKNOWLEDGED = MONDAY_10AM + timedelta(minutes=2)  # in time for every priority's acknowledge SLA
STEP = timedelta(minutes=5)  # beat ticks every few seconds; every 5 minutes is enough here


@pytest.fixture
def rt(settings: Settings, redis_client, tmp_path: Path) -> Runtime:
    return Runtime(replace(settings, bundle_dir=tmp_path))


def sla_lines(rt: Runtime, pagerduty: FakePagerDuty, priority: str, until: datetime) -> list[str]:
    """Respond to an incident raised Monday 10:00 New York, acknowledge it two minutes later,
    never resolve it, tick to `until`; return the timeline's SLA notes and escalations."""
    incident = pagerduty.add_incident(f"k-deadlines-{priority}", "EAFIX alert")
    delivery_id = record_trigger(rt, incident, "EAFIX alert", priority, MONDAY_10AM)
    timeline = Timeline(pagerduty)
    respond(rt, delivery_id, MONDAY_10AM)
    timeline.note(MONDAY_10AM)
    record_event(rt, incident, "acknowledged", ACKNOWLEDGED)
    timeline.note(ACKNOWLEDGED)
    timeline.run(rt, MONDAY_10AM + STEP, until, STEP)
    return [line for line in timeline.lines if "SLA" in line or "escalation level" in line]


# Times are New York's (the timeline's); the notes give UTC (New York is UTC-5 in December).
CASES = [
    ("P0: respond < 15 minutes, resolve < 2 hours (market hours)", "P0",
     MONDAY_10AM + timedelta(hours=3),
     ["Mon 10:15 note: [P0 (PagerDuty: P1)] SLA: the respond deadline (15m) passed 0m ago"
      " (due 15:15 UTC) with the incident acknowledged.",
      "Mon 12:00 escalation level 2",
      "Mon 12:00 note: [P0 (PagerDuty: P1)] SLA missed: not resolved within 2h of market hours"
      " (due 17:00 UTC, 0m late). Escalated to level 2."]),
    # The market trades Sunday 17:00 to Friday 17:00 New York: a Monday's 8 hours are 8 hours.
    ("P1: respond < 30 minutes, resolve < 8 hours (market hours)", "P1",
     MONDAY_10AM + timedelta(hours=9),
     ["Mon 10:30 note: [P1 (PagerDuty: P2)] SLA: the respond deadline (30m) passed 0m ago"
      " (due 15:30 UTC) with the incident acknowledged.",
      "Mon 18:00 escalation level 2",
      "Mon 18:00 note: [P1 (PagerDuty: P2)] SLA missed: not resolved within 8h of market hours"
      " (due 23:00 UTC, 0m late). Escalated to level 2."]),
    ("P2: respond < 4 hours (business hours), resolve < 24 hours", "P2",
     MONDAY_10AM + timedelta(days=1, hours=1),
     ["Mon 14:00 note: [P2 (PagerDuty: P3)] SLA: the respond deadline (4h of business hours)"
      " passed 0m ago (due 19:00 UTC) with the incident acknowledged.",
      "Tue 10:00 escalation level 2",
      "Tue 10:00 note: [P2 (PagerDuty: P3)] SLA missed: not resolved within 24h"
      " (due 15:00 UTC, 0m late). Escalated to level 2."]),
    ("P3: respond < 24 hours, resolve < 5 business days", "P3",
     MONDAY_10AM + timedelta(days=7, hours=1),
     ["Tue 10:00 note: [P3 (PagerDuty: P4)] SLA: the respond deadline (24h, day and night)"
      " passed 0m ago (due 15:00 UTC) with the incident acknowledged.",
      "Mon 10:00 escalation level 2",
      "Mon 10:00 note: [P3 (PagerDuty: P4)] SLA missed: not resolved within 5 business days"
      " (due 15:00 UTC, 0m late). Escalated to level 2."]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "priority", "until", "expected"), CASES, ids=[c[1] for c in CASES]
)
def test_respond_and_resolve_deadlines_pass_a_reminder_then_an_escalation_and_a_note(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    priority: str,
    until: datetime,
    expected: list[str],
) -> None:
    assert sla_lines(rt, pagerduty, priority, until) == expected, case


CTO = Contact(
    email=("cto@eafix.example",),
    request=Management(requester_id="PREQ001", targets=(("PCTO001", "user_reference"),)),
)


@pytest.fixture
def rt_with_cto(rt: Runtime) -> Runtime:
    """The built-in policy with the CTO's responder request configured (commented out there)."""
    rt.policy = replace(rt.policy, communication=replace(rt.policy.communication, cto=CTO))
    return rt


def test_internal_contacts_cto_phone_p0_only_is_one_responder_request(
    rt_with_cto: Runtime, pagerduty: FakePagerDuty
) -> None:
    rt = rt_with_cto
    p0 = pagerduty.add_incident("k-cto-p0", "EAFIX alert")
    respond(rt, record_trigger(rt, p0, "EAFIX alert", "P0", MONDAY_10AM), MONDAY_10AM)
    p1 = pagerduty.add_incident("k-cto-p1", "EAFIX alert")
    respond(rt, record_trigger(rt, p1, "EAFIX alert", "P1", MONDAY_10AM), MONDAY_10AM)
    for minutes in range(0, 61, 5):  # P1's management notice falls due after 30 minutes
        tick(rt, MONDAY_10AM + timedelta(minutes=minutes))
    tick(rt, MONDAY_10AM + timedelta(minutes=5))  # a tick again: nothing is requested twice
    [request] = pagerduty.responder_requests[p0]
    assert request["requester"]["id"] == "PREQ001"
    assert request["responder_request_targets"] == [
        {"responder_request_target": {"id": "PCTO001", "type": "user_reference"}}
    ]
    assert request["message"] == f"EAFIX {Priority.P0} incident needs management: EAFIX alert"
    [note] = [n["content"] for n in pagerduty.notes_for(p0) if "CTO" in n["content"]]
    assert "The CTO is called in by a PagerDuty responder request to PCTO001" in note
    # P0 only: a P1's management notice calls no CTO in.
    assert p1 not in pagerduty.responder_requests
    assert not [n for n in pagerduty.notes_for(p1) if "CTO" in n["content"]]


def test_internal_contacts_cto_a_refused_request_asks_a_person_to_phone(
    rt_with_cto: Runtime, pagerduty: FakePagerDuty
) -> None:
    rt = rt_with_cto
    incident = pagerduty.add_incident("k-cto-402", "EAFIX alert")
    pagerduty.fail_next(402, path_suffix="/responder_requests")
    respond(rt, record_trigger(rt, incident, "EAFIX alert", "P0", MONDAY_10AM), MONDAY_10AM)
    tick(rt, MONDAY_10AM)
    [note] = [n["content"] for n in pagerduty.notes_for(incident) if "CTO" in n["content"]]
    assert "The CTO could not be called in" in note
    assert "phone the CTO by hand (P0 only)" in note
