"""SLA deadlines from the runbook's Incident Metrics: wall clock, business days, market hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.models import Priority
from triage.policy import Policy, builtin, builtin_text, load
from triage.sla import (
    Deadlines,
    deadlines,
    is_business_hours,
    is_market_open,
    next_business_opening,
    next_status_update,
    previous_business_opening,
)

MIN, HOUR = timedelta(minutes=1), timedelta(hours=1)

POLICY = builtin()
WEDNESDAY = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 10:00 New York, market open


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("priority", "ack", "respond", "resolve"),
    [
        ("P0", 5 * MIN, 15 * MIN, 2 * HOUR),
        ("P1", 15 * MIN, 30 * MIN, 8 * HOUR),
        ("P2", 1 * HOUR, 4 * HOUR, 24 * HOUR),
    ],
)  # fmt: skip
def test_during_market_hours_the_matrix_is_plain_durations(priority, ack, respond, resolve):
    due = deadlines(Priority(priority), WEDNESDAY, POLICY)
    assert due.acknowledge - WEDNESDAY == ack
    assert due.respond - WEDNESDAY == respond
    assert due.resolve - WEDNESDAY == resolve
    assert due.next_update == WEDNESDAY  # the first status update goes out with the first note


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
        ("P2", utc(2026, 11, 30, 13, 0), utc(2026, 11, 30, 14, 0)),  # Monday 08:00: at 09:00
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


SATURDAY_2AM = utc(2026, 11, 28, 7, 0)  # 02:00 New York (EST)
MONDAY_9AM = utc(2026, 11, 30, 14, 0)  # the next business opening


@pytest.mark.parametrize(
    ("case", "priority", "triggered", "starts", "ack", "respond", "resolve"),
    [
        ("P2 raised Wednesday 10:00: business hours, as it comes", "P2",
         WEDNESDAY, WEDNESDAY, utc(2026, 11, 25, 16, 0), utc(2026, 11, 25, 19, 0),
         utc(2026, 11, 26, 15, 0)),
        ("P2 raised Saturday 02:00: waits for Monday 09:00", "P2",
         SATURDAY_2AM, MONDAY_9AM, utc(2026, 11, 30, 15, 0), utc(2026, 11, 30, 18, 0),
         utc(2026, 12, 1, 14, 0)),
        ("P2 raised Monday 16:30: the hour runs on into Tuesday morning", "P2",
         utc(2026, 11, 30, 21, 30), utc(2026, 11, 30, 21, 30), utc(2026, 12, 1, 14, 30),
         utc(2026, 12, 1, 17, 30), utc(2026, 12, 1, 21, 30)),
        ("P2 raised Friday 16:00: acknowledged by the close, resolve waits for Monday", "P2",
         utc(2026, 11, 27, 21, 0), utc(2026, 11, 27, 21, 0), utc(2026, 11, 27, 22, 0),
         utc(2026, 11, 30, 17, 0), MONDAY_9AM),
        ("P2 raised Friday 16:30 before the clocks go back", "P2",
         utc(2026, 10, 30, 20, 30), utc(2026, 10, 30, 20, 30), utc(2026, 11, 2, 14, 30),
         utc(2026, 11, 2, 17, 30), utc(2026, 11, 2, 14, 0)),
        ("P2 raised on Christmas Day: waits for the next business day", "P2",
         utc(2026, 12, 25, 15, 0), utc(2026, 12, 28, 14, 0), utc(2026, 12, 28, 15, 0),
         utc(2026, 12, 28, 18, 0), utc(2026, 12, 29, 14, 0)),
        ("P3 raised Saturday 02:00: responds the next business day", "P3",
         SATURDAY_2AM, MONDAY_9AM, utc(2026, 11, 30, 18, 0), utc(2026, 12, 1, 14, 0),
         utc(2026, 12, 7, 14, 0)),
        ("P3 raised Christmas Eve 16:00: around the holidays, responds on Christmas Day", "P3",
         utc(2026, 12, 24, 21, 0), utc(2026, 12, 24, 21, 0), utc(2026, 12, 28, 17, 0),
         utc(2026, 12, 25, 21, 0), utc(2027, 1, 4, 21, 0)),
        ("P1 is paged at any hour", "P1",
         SATURDAY_2AM, SATURDAY_2AM, utc(2026, 11, 28, 7, 15), utc(2026, 11, 28, 7, 30),
         utc(2026, 11, 30, 6, 0)),
    ],
)  # fmt: skip
def test_p2_page_during_business_hours_p3_handle_during_business_hours(
    case: str,
    priority: str,
    triggered: datetime,
    starts: datetime,
    ack: datetime,
    respond: datetime,
    resolve: datetime,
) -> None:
    due = deadlines(Priority(priority), triggered, POLICY)
    assert (due.starts, due.acknowledge, due.respond, due.resolve) == (
        starts, ack, respond, resolve,
    ), case  # fmt: skip
    assert due.deferred is (starts > triggered), case
    assert due.next_update == starts, case  # the first status update: when the clock starts
    # Only a P2 goes back to high urgency at the opening ("Page during business hours").
    assert due.restore_urgency == (starts if due.deferred and priority == "P2" else None), case


@pytest.mark.parametrize(
    ("case", "priority", "due", "now", "following"),
    [
        ("P1 every 30 minutes, at night too", "P1", SATURDAY_2AM, SATURDAY_2AM,
         utc(2026, 11, 28, 7, 30)),
        ("P2 every 2 hours", "P2", MONDAY_9AM, MONDAY_9AM, utc(2026, 11, 30, 16, 0)),
        ("P2 at the close: the close still counts", "P2", utc(2026, 11, 30, 20, 0),
         utc(2026, 11, 30, 20, 0), utc(2026, 11, 30, 22, 0)),
        ("P2 after the close waits for the next opening", "P2", utc(2026, 11, 27, 21, 0),
         utc(2026, 11, 27, 21, 0), MONDAY_9AM),
        ("P3 acted on hours late: the next on the cadence, no backlog", "P3", MONDAY_9AM,
         utc(2026, 11, 30, 19, 10), utc(2026, 11, 30, 20, 0)),
    ],
)  # fmt: skip
def test_progress_updates_every_30_minutes_p0_p1_every_2_hours_p2_p3(
    case: str, priority: str, due: datetime, now: datetime, following: datetime
) -> None:
    assert next_status_update(Priority(priority), due, now, POLICY) == following, case


@pytest.mark.parametrize(
    ("moment", "inside", "opening_after", "opening_before"),
    [
        (utc(2026, 11, 30, 13, 59), False, MONDAY_9AM, utc(2026, 11, 27, 14, 0)),
        (MONDAY_9AM, True, utc(2026, 12, 1, 14, 0), utc(2026, 11, 27, 14, 0)),
        (utc(2026, 11, 30, 22, 0), True, utc(2026, 12, 1, 14, 0), MONDAY_9AM),  # 17:00 close
        (utc(2026, 11, 30, 22, 1), False, utc(2026, 12, 1, 14, 0), MONDAY_9AM),
        (SATURDAY_2AM, False, MONDAY_9AM, utc(2026, 11, 27, 14, 0)),
    ],
)
def test_business_hours_edges(
    moment: datetime, inside: bool, opening_after: datetime, opening_before: datetime
) -> None:
    hours = POLICY.market_hours
    assert is_business_hours(moment, hours) is inside
    assert next_business_opening(moment, hours) == opening_after
    assert previous_business_opening(moment, hours) == opening_before


def test_deadlines_survive_their_stored_form_and_an_older_one() -> None:
    due = deadlines(Priority.P2, SATURDAY_2AM, POLICY)
    assert Deadlines.from_dict(due.to_dict()) == due
    older = {k: v for k, v in due.to_dict().items() if k not in ("active_from", "management")}
    assert Deadlines.from_dict(older).starts == SATURDAY_2AM  # acted on as it came


FRIDAY_4PM = utc(2026, 11, 27, 21, 0)  # Friday 16:00 New York (EST), business hours


def _p3_respond(clock: str) -> Policy:
    """Return the built-in policy with P3's respond target written the `clock` way."""
    span = {"calendar": "{within: 24h, clock: calendar}", "business": "1 business day"}[clock]
    text = builtin_text().replace("respond: {within: 24h, clock: calendar}", f"respond: {span}")
    assert "clock: calendar}," in builtin_text()  # the line replaced is still there
    return load(text)


@pytest.mark.parametrize(
    ("case", "clock", "triggered", "respond"),
    [
        ("a Friday 16:00 P3 is due Saturday 16:00 on the calendar (the default)", "calendar",
         FRIDAY_4PM, utc(2026, 11, 28, 21, 0)),
        ("a Friday 16:00 P3 is due Monday 16:00 counted in business days", "business",
         FRIDAY_4PM, utc(2026, 11, 30, 21, 0)),
        ("a Saturday 02:00 P3 counts its 24 hours from Monday 09:00, when its clock starts",
         "calendar", SATURDAY_2AM, utc(2026, 12, 1, 14, 0)),
    ],
)  # fmt: skip
def test_p3_respond_within_24_hours(
    case: str, clock: str, triggered: datetime, respond: datetime
) -> None:
    assert deadlines(Priority.P3, triggered, _p3_respond(clock)).respond == respond, case


def test_p3_respond_within_24_hours_is_the_built_in_default() -> None:
    assert deadlines(Priority.P3, FRIDAY_4PM, POLICY).respond == utc(2026, 11, 28, 21, 0)
