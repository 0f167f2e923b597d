"""The runbook's Communication Protocol on the controllable clock: status updates (initial,
progress, resolution) and management notifications, as PagerDuty receives them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.sla import closing
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_sla_actions import MANAGEMENT
from tests.support import named
from tests.support.clock import NEW_YORK, Timeline, record_event, record_trigger, respond, tick
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
        assert lines[0].startswith(f"{updates[0]} note: [{named(priority)}]"), case
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


def resolve(rt: Runtime, incident: str, at: datetime) -> None:
    """PagerDuty reports the incident resolved at `at`; the closing task runs on it."""
    delivery_id = record_event(rt, incident, "resolved", at)
    closing.close_resolved(rt, delivery_id, at + timedelta(seconds=30))


def lifetime(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    priority: str,
    raised: datetime,
    resolved: datetime | None,
    until: datetime,
    title: str = "EAFIX alert",
) -> tuple[str, Timeline]:
    """Respond to an incident, tick on, resolve it at `resolved` (if given), tick to `until`."""
    incident = pagerduty.add_incident(f"k-{priority}-{raised:%a%H%M}", title)
    delivery_id = record_trigger(rt, incident, title, priority, raised)
    timeline = Timeline(pagerduty)
    respond(rt, delivery_id, raised)
    timeline.note(raised)
    if resolved is not None:
        timeline.run(rt, raised, resolved - MINUTES, MINUTES)  # beat ticks seconds later
        resolve(rt, incident, resolved)
        timeline.note(resolved)
    timeline.run(rt, resolved + MINUTES if resolved else raised, until, MINUTES)
    return incident, timeline


@pytest.mark.parametrize(
    ("case", "priority", "raised", "fixed_after"),
    [
        ("P0 resolved after 40 minutes", "P0", WEDNESDAY_10AM, timedelta(minutes=40)),
        ("P1 resolved after 20 minutes", "P1", WEDNESDAY_10AM, timedelta(minutes=20)),
        ("P2 resolved the next day", "P2", WEDNESDAY_10AM, timedelta(hours=26)),
        ("P3 resolved at night: told at once all the same", "P3", WEDNESDAY_10AM,
         timedelta(hours=12)),
        ("P2 raised and resolved on Saturday night, before its clock started", "P2",
         SATURDAY_2AM, timedelta(hours=1)),
    ],
)  # fmt: skip
def test_resolution_notification_within_15_minutes_of_fix(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    priority: str,
    raised: datetime,
    fixed_after: timedelta,
) -> None:
    fixed = raised + fixed_after
    incident, timeline = lifetime(
        rt, pagerduty, priority, raised, fixed, fixed + timedelta(hours=1)
    )
    at = f"{fixed:%a %H:%M}"
    assert [line for line in timeline.lines if line.startswith(at)] == [
        f"{at} note: [{named(priority)}] Resolved. Incident metrics against the SLA:",
        f"{at} status update: Status: Resolved",
    ], case
    [*_, last] = pagerduty.status_updates[incident]
    assert last["message"].splitlines()[3:] == [
        "Actions: resolved by Dana", "ETA: resolved", "Next Update: none, this is the last",
    ], case  # fmt: skip
    # Nothing follows the resolution but management's notification, when one was still due.
    after = timeline.lines[timeline.lines.index(f"{at} status update: Status: Resolved") + 1 :]
    assert all("anagement" in line for line in after), case


@pytest.mark.parametrize(
    ("case", "priority", "fixed_after", "targets", "told"),
    [
        ("P0: at once, responders called in", "P0", None, True,
         ["Wed 10:00 responder request: EAFIX P0 incident needs management: EAFIX alert",
          "Wed 10:00 note: [P0 (PagerDuty: P1)] "
          "Management notification due (immediately): responders "
          "requested from PEP0001 (escalation policy), PUSR001 (user)."]),
        ("P1 open at 30 minutes: responders called in", "P1", None, True,
         ["Wed 10:30 responder request: EAFIX P1 incident needs management: EAFIX alert",
          "Wed 10:30 note: [P1 (PagerDuty: P2)] "
          "Management notification due (30m): responders requested from "
          "PEP0001 (escalation policy), PUSR001 (user)."]),
        ("P1 resolved in 20 minutes: a resolution summary, no one called in", "P1", 20, True,
         ["Wed 10:30 note: [P1 (PagerDuty: P2)] "
          "Management notification (30m): resolved before it fell due. "
          "Resolution summary for engineering management:"]),
        ("P1 resolved in 20 minutes, no one named to call in: the same", "P1", 20, False,
         ["Wed 10:30 note: [P1 (PagerDuty: P2)] "
          "Management notification (30m): resolved before it fell due. "
          "Resolution summary for engineering management:"]),
        ("P1 open at 30 minutes, no one named: the note says management was e-mailed", "P1",
         None, False,
         ["Wed 10:30 note: [P1 (PagerDuty: P2)] "
          "Management notification due (30m): engineering management was e-mailed "
          "(engineering-management@eafix.example); no one is called in."]),
    ],
)  # fmt: skip
def test_management_p0_incidents_immediate_notification_p1_incidents_within_30_minutes(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    priority: str,
    fixed_after: int | None,
    targets: bool,
    told: list[str],
) -> None:
    if targets:
        rt.policy = replace(
            rt.policy, pagerduty=replace(rt.policy.pagerduty, management=MANAGEMENT)
        )
    fixed = WEDNESDAY_10AM + timedelta(minutes=fixed_after) if fixed_after else None
    incident, timeline = lifetime(
        rt, pagerduty, priority, WEDNESDAY_10AM, fixed, WEDNESDAY_10AM + timedelta(hours=1)
    )
    about = [line for line in timeline.lines if "anagement" in line]
    assert about == told, case
    assert len(pagerduty.responder_requests.get(incident, [])) == (
        1 if targets and fixed is None else 0
    ), case
    if fixed is not None:
        [note] = [n for n in pagerduty.notes_for(incident) if "resolved before" in n["content"]]
        assert note["content"].splitlines()[1:3] == [
            "- never acknowledged; resolved after 20m (SLA 15m: MISSED)",
            "- resolved after 20m (SLA 8h of market hours: met)",
        ], case


MONDAY_10AM = datetime(2026, 11, 30, 10, 0, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("case", "priority", "raised", "fixed_after", "summarised"),
    [
        ("P2 raised Monday 10:00: in Tuesday 09:00's summary", "P2", MONDAY_10AM, None,
         "Tue 09:00"),
        ("P2 resolved within the hour: summarised all the same", "P2", MONDAY_10AM,
         timedelta(minutes=30), "Tue 09:00"),
        ("P3 raised Friday 18:00: in Monday 09:00's summary", "P3",
         datetime(2026, 11, 27, 18, 0, tzinfo=NEW_YORK), None, "Mon 09:00"),
        ("P2 raised Monday 08:00, before the opening: in Monday 09:00's", "P2",
         datetime(2026, 11, 30, 8, 0, tzinfo=NEW_YORK), None, "Mon 09:00"),
        ("P3 raised Christmas Eve evening: after the holiday", "P3",
         datetime(2026, 12, 24, 18, 0, tzinfo=NEW_YORK), None, "Mon 09:00"),
        ("P1: not in a summary, management heard within 30 minutes", "P1", MONDAY_10AM, None,
         None),
    ],
)  # fmt: skip
def test_management_p2_p3_incidents_next_business_day_summary(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    priority: str,
    raised: datetime,
    fixed_after: timedelta | None,
    summarised: str | None,
) -> None:
    fixed = raised + fixed_after if fixed_after else None
    _, timeline = lifetime(rt, pagerduty, priority, raised, fixed, raised + timedelta(days=4))
    summaries = [line[:9] for line in timeline.lines if "Next business day summary" in line]
    assert summaries == ([summarised] if summarised else []), case


def test_one_summary_covers_a_business_days_incidents_each_noted_once(
    rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    def raise_(priority: str, at: datetime, title: str) -> str:
        incident = pagerduty.add_incident(f"k-{title}", title)
        respond(rt, record_trigger(rt, incident, title, priority, at), at)
        return incident

    first = raise_("P2", MONDAY_10AM, "ServiceDown")
    record_event(rt, first, "acknowledged", MONDAY_10AM + timedelta(minutes=20))
    resolve(rt, first, MONDAY_10AM + timedelta(hours=1))
    second = raise_("P3", MONDAY_10AM + timedelta(hours=4), "GatewayStaticAssetErrors")
    raise_("P1", MONDAY_10AM + timedelta(hours=2), "SignalLatencyHigh")
    third = raise_("P2", MONDAY_10AM + timedelta(hours=10), "IndicatorDataQuality")
    tuesday = datetime(2026, 12, 1, 9, 0, tzinfo=NEW_YORK)
    for now in (tuesday, tuesday + MINUTES):
        tick(rt, now)
    # A delivery of Monday replayed on Tuesday registers Monday's summary again: no repeats.
    late = raise_("P3", MONDAY_10AM + timedelta(hours=5), "DocsBuildFailing")
    tick(rt, tuesday + 2 * MINUTES)

    summaries = {  # each note's text, less its own reference marker
        incident: [
            n["content"].rsplit("\n", 1)[0]
            for n in pagerduty.notes_for(incident)
            if "Next business day summary" in n["content"]
        ]
        for incident in pagerduty.incidents
    }
    [text] = summaries[first]
    assert summaries[second] == summaries[third] == [text]
    [own] = summaries[late]  # its own note, written with it included
    assert own.startswith("[P2/P3] Next business day summary for management: 4 incidents")
    assert not any(summaries[i] for i in set(summaries) - {first, second, third, late})
    lines = text.splitlines()
    assert lines[0] == (
        "[P2/P3] Next business day summary for management: 3 incidents from "
        "Mon 09:00 New York time to Tue 09:00 New York time"
    )
    assert lines[2:5] == [
        "priority  incidents      MTTA         ack SLA      MTTR     resolve SLA",
        "P2                2       20m      1/1 (100%)        1h      1/1 (100%)",
        "P3                1         -               -         -               -",
    ]
    assert lines[6:9] == [
        f"- {first} [P2 (PagerDuty: P3)] ServiceDown: resolved, raised Mon 10:00 New York time; "
        "acknowledged after 20m; resolved after 1h",
        f"- {second} [P3 (PagerDuty: P4)] GatewayStaticAssetErrors: triggered, "
        "raised Mon 14:00 New York time; "
        "not acknowledged",
        f"- {third} [P2 (PagerDuty: P3)] IndicatorDataQuality: triggered, "
        "raised Mon 20:00 New York time; "
        "not acknowledged",
    ]
