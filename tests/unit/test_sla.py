"""SLA deadlines from the runbook's Incident Metrics: wall clock, business days, market hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.models import Priority
from triage.policy import builtin
from triage.sla import deadlines, is_market_open

MIN, HOUR = timedelta(minutes=1), timedelta(hours=1)

POLICY = builtin()
WEDNESDAY = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 10:00 New York, market open


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("priority", "ack", "respond", "resolve", "update"),
    [
        ("P0", 5 * MIN, 15 * MIN, 2 * HOUR, 30 * MIN),
        ("P1", 15 * MIN, 30 * MIN, 8 * HOUR, 30 * MIN),
        ("P2", 1 * HOUR, 4 * HOUR, 24 * HOUR, 2 * HOUR),
    ],
)  # fmt: skip
def test_during_market_hours_the_matrix_is_plain_durations(priority, ack, respond, resolve, update):
    due = deadlines(Priority(priority), WEDNESDAY, POLICY)
    assert due.acknowledge - WEDNESDAY == ack
    assert due.respond - WEDNESDAY == respond
    assert due.resolve - WEDNESDAY == resolve
    assert due.next_update - WEDNESDAY == update


@pytest.mark.parametrize(
    ("case", "priority", "triggered", "resolve"),
    [
        # Friday 16:00 EDT: one hour before the close, the rest from Sunday 17:00, which after
        # the daylight-saving change of 2026-11-01 is 22:00 UTC, not 21:00.
        ("across the weekend and DST", "P0", utc(2026, 10, 30, 20, 0), utc(2026, 11, 1, 23, 0)),
        ("raised on Saturday", "P1", utc(2026, 11, 28, 15, 0), utc(2026, 11, 30, 6, 0)),
        ("raised at Sunday's open", "P0", utc(2026, 11, 29, 22, 0), utc(2026, 11, 30, 0, 0)),
        # Thursday 23:30 EST before Christmas: 30 min, then the holiday and the weekend.
        ("across a holiday", "P0", utc(2026, 12, 25, 4, 30), utc(2026, 12, 27, 23, 30)),
    ],
)  # fmt: skip
def test_p0_and_p1_resolve_on_the_market_hours_clock(case, priority, triggered, resolve) -> None:
    due = deadlines(Priority(priority), triggered, POLICY)
    assert due.resolve == resolve, case
    # Acknowledge and respond run on the wall clock, market or not.
    assert due.acknowledge - triggered == POLICY.sla[Priority(priority)].acknowledge.duration


@pytest.mark.parametrize(
    ("case", "triggered", "resolve"),
    [
        ("over a weekend", utc(2026, 11, 26, 15, 0), utc(2026, 12, 3, 15, 0)),
        # Christmas Day is a holiday: Thu 24 (1), Mon 28 (2) ... Thu 31 (5).
        ("over Christmas", utc(2026, 12, 23, 15, 0), utc(2026, 12, 31, 15, 0)),
        # 10:00 EDT stays 10:00 local after the change: 15:00 UTC.
        ("across DST", utc(2026, 10, 29, 14, 0), utc(2026, 11, 5, 15, 0)),
    ],
)
def test_p3_resolves_in_five_business_days_at_the_same_local_time(case, triggered, resolve) -> None:
    assert deadlines(Priority.P3, triggered, POLICY).resolve == resolve, case


@pytest.mark.parametrize(
    ("priority", "triggered", "told"),
    [
        ("P0", utc(2026, 11, 27, 15, 0), utc(2026, 11, 27, 15, 0)),  # immediately
        ("P1", utc(2026, 11, 27, 15, 0), utc(2026, 11, 27, 15, 30)),  # within 30 minutes
        ("P2", utc(2026, 11, 27, 15, 0), utc(2026, 11, 30, 14, 0)),  # Monday 09:00 New York
        ("P3", utc(2026, 12, 24, 15, 0), utc(2026, 12, 28, 14, 0)),  # after Christmas
    ],
)
def test_management_notification(priority: str, triggered: datetime, told: datetime) -> None:
    assert deadlines(Priority(priority), triggered, POLICY).notify_management == told


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (utc(2026, 11, 27, 21, 59), True),  # Friday 16:59 EST
        (utc(2026, 11, 27, 22, 0), False),  # Friday 17:00
        (utc(2026, 11, 28, 12, 0), False),  # Saturday
        (utc(2026, 11, 29, 21, 59), False),  # Sunday 16:59
        (utc(2026, 11, 29, 22, 0), True),  # Sunday 17:00
        (utc(2026, 10, 25, 21, 0), True),  # Sunday 17:00 EDT, before the change
        (utc(2026, 12, 25, 15, 0), False),  # Christmas
    ],
)
def test_market_hours_edges(moment: datetime, open_: bool) -> None:
    assert is_market_open(moment, POLICY.market_hours) is open_


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        deadlines(Priority.P0, datetime(2026, 11, 27, 15, 0), POLICY)
