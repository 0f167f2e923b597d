"""The runbook's Communication Protocol on the controllable clock: status updates (initial,
progress, resolution) and management notifications, as PagerDuty receives them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support.clock import NEW_YORK, Timeline, record_trigger, respond
from triage.models import Priority
from triage.policy import Span

MINUTES = timedelta(minutes=5)
WEDNESDAY_10AM = datetime(2026, 11, 25, 10, 0, tzinfo=NEW_YORK)
SATURDAY_2AM = datetime(2026, 11, 28, 2, 0, tzinfo=NEW_YORK)


@pytest.fixture
def rt(settings: Settings, redis_client, tmp_path: Path) -> Runtime:
    return Runtime(replace(settings, bundle_dir=tmp_path))


def updates_of(
    rt: Runtime, pagerduty: FakePagerDuty, priority: str, raised: datetime, until: datetime
) -> list[str]:
    """Respond to an incident raised at `raised`, tick to `until`; return its timeline."""
    incident = pagerduty.add_incident(f"k-{priority}", "EAFIX alert")
    delivery_id = record_trigger(rt, incident, "EAFIX alert", priority, raised)
    timeline = Timeline(pagerduty)
    respond(rt, delivery_id, raised)
    timeline.note(raised)
    timeline.run(rt, raised + MINUTES, until, MINUTES)
    return timeline.lines


@pytest.mark.parametrize(
    ("case", "priority", "raised", "hours", "updates"),
    [
        ("P0: with the first note, then every 30 minutes", "P0", WEDNESDAY_10AM, 1,
         ["Wed 10:00", "Wed 10:30", "Wed 11:00"]),
        ("P1: every 30 minutes at night too", "P1", SATURDAY_2AM, 1,
         ["Sat 02:00", "Sat 02:30", "Sat 03:00"]),
        ("P2: with the first note, then every 2 hours", "P2", WEDNESDAY_10AM, 4,
         ["Wed 10:00", "Wed 12:00", "Wed 14:00"]),
        ("P3: every 2 hours of business hours", "P3", WEDNESDAY_10AM + timedelta(hours=4), 21,
         ["Wed 14:00", "Wed 16:00", "Thu 09:00", "Thu 11:00"]),
        ("P2 raised Saturday: the first at Monday's opening", "P2", SATURDAY_2AM, 57,
         ["Mon 09:00", "Mon 11:00"]),
    ],
)  # fmt: skip
def test_initial_within_15_minutes_then_every_30_minutes_p0_p1_every_2_hours_p2_p3(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    priority: str,
    raised: datetime,
    hours: int,
    updates: list[str],
) -> None:
    lines = updates_of(rt, pagerduty, priority, raised, raised + timedelta(hours=hours))
    assert [line[:9] for line in lines if "status update" in line] == updates, case
    if raised == WEDNESDAY_10AM:  # in business hours: posted by the response, after its note
        assert lines[0].startswith(f"{updates[0]} note: [{priority}]"), case
        assert lines[1] == f"{updates[0]} status update: Status: Investigating", case


def test_initial_update_within_response_time_sla_an_operator_may_hold_it_back(
    rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    policy = rt.policy
    held = replace(policy.sla[Priority.P1], initial_update=Span(duration=timedelta(minutes=10)))
    rt.policy = replace(policy, sla={**policy.sla, Priority.P1: held})
    lines = updates_of(rt, pagerduty, "P1", WEDNESDAY_10AM, WEDNESDAY_10AM + timedelta(hours=1))
    assert [line[:9] for line in lines if "status update" in line] == [
        "Wed 10:10", "Wed 10:40",
    ]  # fmt: skip
