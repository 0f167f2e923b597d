"""SLA deadlines from the runbook's Incident Metrics."""

from datetime import UTC, datetime, timedelta

import pytest

from triage.models import Priority
from triage.policy import builtin
from triage.sla import deadlines

POLICY = builtin()


@pytest.mark.parametrize(
    ("priority", "ack", "respond", "resolve", "update"),
    [
        (
            "P0",
            timedelta(minutes=5),
            timedelta(minutes=15),
            timedelta(hours=2),
            timedelta(minutes=30),
        ),
        (
            "P1",
            timedelta(minutes=15),
            timedelta(minutes=30),
            timedelta(hours=8),
            timedelta(minutes=30),
        ),
        ("P2", timedelta(hours=1), timedelta(hours=4), timedelta(hours=24), timedelta(hours=2)),
    ],
)
def test_deadlines_follow_the_matrix(priority, ack, respond, resolve, update) -> None:
    start = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    due = deadlines(Priority(priority), start, POLICY)
    assert due.acknowledge - start == ack
    assert due.respond - start == respond
    assert due.resolve - start == resolve
    assert due.next_update - start == update


def test_p3_resolves_in_five_business_days_skipping_the_weekend() -> None:
    thursday = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    due = deadlines(Priority.P3, thursday, POLICY)
    assert due.resolve == datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # the next Thursday
    assert due.acknowledge - thursday == timedelta(hours=4)


def test_management_is_told_at_once_for_p0_and_next_business_day_for_p2() -> None:
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert deadlines(Priority.P0, friday, POLICY).notify_management == friday
    assert deadlines(Priority.P2, friday, POLICY).notify_management == datetime(
        2026, 11, 30, 15, 0, tzinfo=UTC
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        deadlines(Priority.P0, datetime(2026, 11, 27, 15, 0), POLICY)
