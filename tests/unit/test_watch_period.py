"""Post-Incident Procedures, "Monitoring: Increased monitoring for 24 hours", as a table: the
same alert group firing again soon after its incident resolved opens an incident one step
more urgent, never beyond the policy's ceiling, and says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.models import Priority
from triage.policy import WatchPeriod, builtin, builtin_text, load
from triage.watch_period import Resolved, one_step_more_urgent, recurrence

RESOLVED_AT = datetime(2027, 3, 3, 14, 0, tzinfo=UTC)
H = timedelta(hours=1)
DAY = WatchPeriod(within=timedelta(hours=24), highest=Priority.P1)


@pytest.mark.parametrize(
    ("line", "earlier", "priority", "after", "period", "expected", "sentence"),
    [
        ("a P2 back 3h after PINC0003 resolved is P1", Priority.P2, Priority.P2, 3 * H, DAY,
         Priority.P1,
         "fired again 3h after PINC0003 was resolved: watch period of 24h, P2 raised to P1"),
        ("a P3 back is P2", Priority.P3, Priority.P3, 3 * H, DAY, Priority.P2,
         "fired again 3h after PINC0003 was resolved: watch period of 24h, P3 raised to P2"),
        ("a P1 back stays P1: a recurrence alone is not the runbook's P0", Priority.P1,
         Priority.P1, 3 * H, DAY, Priority.P1,
         "fired again 3h after PINC0003 was resolved: watch period of 24h, stays P1 (the watch "
         "period raises no higher than P1)"),
        ("a P0 back stays P0, never above", Priority.P0, Priority.P0, 3 * H, DAY, Priority.P0,
         "fired again 3h after PINC0003 was resolved: watch period of 24h, stays P0 (the most "
         "urgent)"),
        ("a policy that lets it reach P0 raises a P1 to P0", Priority.P1, Priority.P1, 3 * H,
         WatchPeriod(timedelta(hours=24), Priority.P0), Priority.P0,
         "fired again 3h after PINC0003 was resolved: watch period of 24h, P1 raised to P0"),
        ("exactly at 24h still counts", Priority.P2, Priority.P2, 24 * H, DAY, Priority.P1,
         "fired again 24h after PINC0003 was resolved: watch period of 24h, P2 raised to P1"),
        ("25h after: outside the watch period, nothing said", Priority.P2, Priority.P2, 25 * H,
         DAY, None, None),
        ("the watch period off (0s)", Priority.P2, Priority.P2, 3 * H,
         WatchPeriod(timedelta(0), Priority.P1), None, None),
        ("the raise is from what the rules give the new alert, not the earlier incident",
         Priority.P1, Priority.P3, 3 * H, DAY, Priority.P2,
         "fired again 3h after PINC0003 was resolved: watch period of 24h, P3 raised to P2"),
        ("an alert that started before the resolution was recorded (clock skew) counts as 0s",
         Priority.P2, Priority.P2, -timedelta(seconds=5), DAY, Priority.P1,
         "fired again 0s after PINC0003 was resolved: watch period of 24h, P2 raised to P1"),
    ],
)  # fmt: skip
def test_monitoring_increased_monitoring_for_24_hours_after_an_incident(
    line: str,
    earlier: Priority,
    priority: Priority,
    after: timedelta,
    period: WatchPeriod,
    expected: Priority | None,
    sentence: str | None,
) -> None:
    resolved = Resolved("PINC0003", RESOLVED_AT, earlier)
    found = recurrence(priority, resolved, RESOLVED_AT + after, period)
    if expected is None:
        assert found is None, line
        return
    assert found is not None, line
    assert found.priority == expected, line
    assert found.sentence(period.highest) == sentence, line
    assert found.to_dict(period.highest)["earlier"] == "PINC0003"


def test_an_alert_never_resolved_before_is_not_watched() -> None:
    assert recurrence(Priority.P2, None, RESOLVED_AT, DAY) is None


@pytest.mark.parametrize(
    ("priority", "highest", "expected"),
    [(Priority.P3, Priority.P1, Priority.P2), (Priority.P2, Priority.P1, Priority.P1),
     (Priority.P1, Priority.P1, Priority.P1), (Priority.P0, Priority.P1, Priority.P0),
     (Priority.P1, Priority.P0, Priority.P0), (Priority.P0, Priority.P0, Priority.P0),
     (Priority.P3, Priority.P3, Priority.P3)],
)  # fmt: skip
def test_one_step_more_urgent_never_beyond_the_ceiling_and_never_lower(
    priority: Priority, highest: Priority, expected: Priority
) -> None:
    assert one_step_more_urgent(priority, highest) == expected


def test_the_builtin_policy_watches_24_hours_and_raises_to_p1_at_most() -> None:
    assert builtin().watch_period == WatchPeriod(timedelta(hours=24), Priority.P1)


def test_a_resolution_survives_the_store_round_trip() -> None:
    resolved = Resolved("PINC0003", RESOLVED_AT, Priority.P2)
    assert Resolved.from_dict(resolved.to_dict()) == resolved


def test_a_policy_without_the_section_watches_24_hours() -> None:
    lines = builtin_text().splitlines()
    start = lines.index("watch_period:")
    text = "\n".join(lines[:start] + lines[start + 3 :]) + "\n"
    assert "watch_period" not in text
    assert load(text).watch_period == WatchPeriod()
