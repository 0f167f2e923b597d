"""When is the monitoring pipeline silent? The Watchdog decision, on chosen moments (New York)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.support.clock import NEW_YORK
from tests.unit.test_policy import POLICIES
from triage.policy import WatchdogPolicy, builtin, load_file
from triage.watchdog import silence

HOURS = builtin().market_hours  # Sunday 17:00 to Friday 17:00, New York
WATCHING = datetime(2027, 3, 1, 0, 0, tzinfo=NEW_YORK)  # a Monday: watching since midnight


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Return a moment of the first week of March 2027 in New York (1st: a Monday)."""
    return datetime(2027, 3, day, hour, minute, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("last_seen", "now", "market_hours_only", "silent"),
    [
        # Tuesday, market open: 5m without a Watchdog is silence; 4m59s is not yet.
        (at(2, 10), at(2, 10, 4) + timedelta(seconds=59), True, False),
        (at(2, 10), at(2, 10, 5), True, True),
        (at(2, 10), at(2, 14), True, True),
        # Never heard: silence counts from when the responder began watching.
        (None, at(1, 0, 4), True, False),
        (None, at(1, 0, 5), True, True),
        # Friday after the close, market hours only: the silence waits for Sunday's open ...
        (at(5, 16, 58), at(5, 17, 10), True, False),
        (at(5, 16, 58), at(6, 12), True, False),
        (at(5, 16, 58), at(7, 17), True, True),
        # ... unless the policy watches around the clock.
        (at(5, 16, 58), at(5, 17, 10), False, True),
    ],
)
def test_the_pipeline_is_silent_after_the_interval_without_a_watchdog_during_market_hours(
    last_seen: datetime | None, now: datetime, market_hours_only: bool, silent: bool
) -> None:
    watchdog = WatchdogPolicy(timedelta(minutes=5), market_hours_only=market_hours_only)
    assert silence(watchdog, HOURS, last_seen, WATCHING, now).silent is silent


def test_silence_is_dated_from_the_last_watchdog_not_from_watching() -> None:
    watchdog = WatchdogPolicy(timedelta(minutes=5))
    assert silence(watchdog, HOURS, at(2, 10), WATCHING, at(2, 11)).since == at(2, 10)


def test_the_watchdog_is_watched_only_where_the_policy_says_so() -> None:
    assert builtin().watchdog is None
    assert builtin().watchdog_alertname == "Watchdog"  # its arrivals are noted all the same
    watched = load_file(POLICIES / "good" / "watchdog.yaml").watchdog
    assert watched == WatchdogPolicy(timedelta(minutes=5), market_hours_only=True)
