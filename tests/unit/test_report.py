"""Incident Metrics from incident records: MTTA, MTTR and SLA compliance, by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.notes.voice import Voice
from triage.models import Priority
from triage.policy import builtin
from triage.report import (
    Compliance,
    IncidentTimes,
    from_record,
    metrics,
)

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # Wednesday 10:00 in New York: market open


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def test_a_record_without_our_clock_is_not_counted() -> None:
    assert from_record({"id": "P1", "status": "resolved", "resolved_at": at(5)}) is None


def test_resolved_without_acknowledgement_counts_as_acknowledged_at_resolution() -> None:
    record = {
        "id": "PX",
        "sla_priority": "P2",
        "sla_started_at": at(0),
        "status": "resolved",
        "resolved_at": at(120),
    }
    times = from_record(record)
    two_hours = T0 + timedelta(hours=2)
    assert times == IncidentTimes("PX", Priority.P2, T0, two_hours, two_hours, True)
    assert Voice.of(builtin()).closing(times).splitlines()[1:3] == [
        "- never acknowledged; resolved after 2h (SLA 1h of business hours: MISSED)",
        "- resolved after 2h (SLA 24h: met)",
    ]


def test_moments_before_a_reopen_belong_to_the_earlier_cycle() -> None:
    record = {
        "id": "PR",
        "sla_priority": "P1",
        "sla_started_at": at(60),  # reopened at +1h: the clock started again
        "status": "triggered",
        "acknowledged_at": at(5),
        "resolved_at": at(20),
    }
    times = from_record(record)
    assert times is not None and times.acknowledged is None and times.resolved is None


def test_figures_per_priority_and_open_incidents_not_yet_due_are_not_judged() -> None:
    incidents = [
        # P0: acknowledge 5m; resolve 2h of market hours (the market is open all along).
        IncidentTimes("A", Priority.P0, T0, T0 + timedelta(minutes=3), T0 + timedelta(minutes=90)),
        IncidentTimes("B", Priority.P0, T0, T0 + timedelta(minutes=10), T0 + timedelta(hours=3)),
        # P2: acknowledge 1h; resolve 24h. One acknowledged in time and still open, one not yet due.
        IncidentTimes("D", Priority.P2, T0, T0 + timedelta(minutes=30)),
        IncidentTimes("E", Priority.P2, T0 + timedelta(hours=3)),
    ]
    now = T0 + timedelta(hours=3, minutes=30)
    p0, p1, p2, p3 = metrics(incidents, builtin(), now)
    assert (p0.incidents, p0.acknowledged, p0.resolved) == (2, 2, 2)
    assert p0.mtta == timedelta(minutes=6, seconds=30)  # (3m + 10m) / 2
    assert p0.mttr == timedelta(minutes=135)  # (90m + 180m) / 2
    assert p0.acknowledge_sla == Compliance(1, 2)
    assert p0.resolve_sla == Compliance(1, 2)
    assert (p1.incidents, p1.mtta, p1.acknowledge_sla) == (0, None, Compliance(0, 0))
    assert p2.mtta == timedelta(minutes=30) and p2.mttr is None
    assert p2.acknowledge_sla == Compliance(1, 1)  # E is 30m old: its hour is not up
    assert p2.resolve_sla == Compliance(0, 0)  # neither is 24h old
    assert p3.incidents == 0
    table = Voice.of(builtin()).report([p0, p1, p2, p3]).splitlines()
    assert table[0].split() == [
        "priority",
        "incidents",
        "MTTA",
        "ack",
        "SLA",
        "MTTR",
        "resolve",
        "SLA",
    ]
    assert table[1].split() == ["P0", "2", "6m30s", "1/2", "(50%)", "2h15m", "1/2", "(50%)"]
    assert table[2].split() == ["P1", "0", "-", "-", "-", "-"]


def test_the_first_acknowledgement_of_the_cycle_counts() -> None:
    record = {
        "id": "PA",
        "sla_priority": "P0",
        "sla_started_at": at(0),
        "status": "resolved",
        "acknowledged_at": at(50),  # the record keeps the latest one
        "resolved_at": at(90),
    }
    history = [
        {"at": at(12), "what": "acknowledged", "by": "Dana"},
        {"at": at(42), "what": "unacknowledged", "by": "PagerDuty"},
        {"at": at(50), "what": "acknowledged", "by": "Dana"},
        {"at": at(60), "what": "note: [P0] ...", "by": "responder"},
        {"at": at(90), "what": "resolved", "by": "Dana"},
    ]
    times = from_record(record, history)
    assert times is not None
    assert times.acknowledged == T0 + timedelta(minutes=12)
    assert times.resolved == T0 + timedelta(minutes=90)


def test_unreadable_or_zoneless_moments_are_skipped_not_fatal() -> None:
    record = {"id": "PB", "sla_priority": "P2", "sla_started_at": at(0), "status": "resolved"}
    history = [
        {"at": "yesterday", "what": "acknowledged"},
        {"at": "2026-11-25T15:05:00", "what": "acknowledged"},  # no zone
        {"what": "resolved"},
        {"at": at(40), "what": "resolved", "by": "Dana"},
    ]
    times = from_record(record, history)
    assert times is not None and times.resolved == T0 + timedelta(minutes=40)
    assert times.acknowledged_by_resolving
    assert from_record({**record, "sla_started_at": "2026-11-25T15:00:00"}) is None
    assert from_record({**record, "sla_priority": "P9"}) is None


# The runbook's Incident Metrics "MTTA (Mean Time to Acknowledge)": what the closing note says
# of one P1 -> the report's row (an incident nobody acknowledged has no time to acknowledge)
@pytest.mark.parametrize(
    ("record", "closing", "row"),
    [
        ({"resolved_at": at(19 / 60)},
         "- never acknowledged; resolved after 19s (SLA 15m: met)",
         ["P1", "1", "-", "1/1", "(100%)", "19s", "1/1", "(100%)"]),
        ({"acknowledged_at": at(2), "resolved_at": at(20)},
         "- acknowledged after 2m (SLA 15m: met)",
         ["P1", "1", "2m", "1/1", "(100%)", "20m", "1/1", "(100%)"]),
        ({"resolved_at": at(30)},
         "- never acknowledged; resolved after 30m (SLA 15m: MISSED)",
         ["P1", "1", "-", "0/1", "(0%)", "30m", "1/1", "(100%)"]),
    ],
    ids=["never acknowledged, resolved in 19s", "acknowledged", "never acknowledged, late"],
)  # fmt: skip
def test_incident_metrics_mtta_counts_only_incidents_a_person_acknowledged(
    record: dict[str, str], closing: str, row: list[str]
) -> None:
    full = {"id": "PX", "sla_priority": "P1", "sla_started_at": at(0), "status": "resolved"}
    times = from_record({**full, **record})
    assert times is not None
    voice = Voice.of(builtin())
    assert voice.closing(times).splitlines()[1] == closing
    p1 = metrics([times], builtin(), T0 + timedelta(hours=1))[1]
    assert voice.report([p1]).splitlines()[1].split() == row
