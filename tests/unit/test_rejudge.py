"""Judged again when time changes the answer: when an incident is classified again, and what a
new classification does (triage.rejudge, pure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from triage.models import Classification, Incident, Priority
from triage.policy import builtin
from triage.rejudge import Change, decide, judge, next_judgement

POLICY = builtin()
NY = ZoneInfo("America/New_York")


def ny(day: int, hour: int, month: int = 11) -> datetime:
    """Return a moment of 2026 in New York time."""
    return datetime(2026, month, day, hour, 0, tzinfo=NY)


def incident(title: str) -> Incident:
    return Incident("P1", f"[FIRING:1] {title}", "triggered", urgency="high")


@pytest.mark.parametrize(
    ("case", "title", "now", "judged_at", "then"),
    [
        ("market data feed interruption raised Saturday: judged again at Sunday's open",
         "MarketDataStale", ny(28, 12), ny(29, 17), "P1"),
        ("market data feed interruption raised in market hours: judged again at Friday's close",
         "MarketDataStale", ny(25, 10), ny(27, 17), "P3"),
        ("complete system outage on Saturday: P0 at Sunday's open",
         "EAFIXCompleteOutage", ny(28, 3), ny(29, 17), "P0"),
        ("a holiday closes the market at midnight (Christmas Day)",
         "MarketDataStale", ny(24, 12, month=12), ny(25, 0, month=12), "P3"),
        ("position reconciliation failure does not depend on the market: never judged again",
         "PositionReconciliationFailed", ny(28, 12), None, None),
    ],
)  # fmt: skip
def test_judged_again_at_the_next_market_open_or_close_that_changes_the_priority(
    case: str, title: str, now: datetime, judged_at: datetime | None, then: str | None
) -> None:
    subjects = [incident(title)]
    assert next_judgement(subjects, POLICY, now) == judged_at, case
    if judged_at is not None:
        result = judge(subjects, POLICY, judged_at)
        assert result is not None and result.priority.value == then, case


def test_nothing_firing_is_never_judged_again() -> None:
    assert next_judgement([], POLICY, ny(28, 12)) is None
    assert judge([], POLICY, ny(28, 12)) is None


@pytest.mark.parametrize(
    ("case", "was", "now", "acknowledged", "change"),
    [
        ("a rise is acted on at once", "P3", "P1", False, Change.RISE),
        ("a rise is acted on though a person acknowledged it", "P3", "P1", True, Change.RISE),
        ("a fall is applied while no person has acknowledged it", "P1", "P3", False, Change.FALL),
        ("a fall after a person acknowledged it is theirs to decide", "P1", "P3", True,
         Change.FALL_HELD),
        ("the same priority changes nothing", "P1", "P1", True, Change.SAME),
    ],
)  # fmt: skip
def test_a_rise_at_once_a_fall_never_silently(
    case: str, was: str, now: str, acknowledged: bool, change: Change
) -> None:
    judged = Classification(Priority(now), "rule", "why")
    judgement = decide(Priority(was), judged, acknowledged, market_open=True)
    assert judgement.change is change, case
