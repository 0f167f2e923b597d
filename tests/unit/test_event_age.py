"""A signed event is acted on only while fresh: its own occurred_at bounds a replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.event_age import age_problem

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
LIMIT, SKEW = timedelta(minutes=10), timedelta(seconds=60)


@pytest.mark.parametrize(
    ("occurred", "verdict"),
    [
        (NOW, None),
        (NOW - timedelta(minutes=9, seconds=59), None),
        (NOW - timedelta(minutes=10), None),
        (NOW + timedelta(seconds=60), None),
        (NOW - timedelta(minutes=10, seconds=30),
         "stale event: occurred_at 2026-12-07T09:49:30+00:00 is 630 s old, "
         "past the limit of 600 s; a replay is never acted on"),
        (NOW + timedelta(seconds=61),
         "event from the future: occurred_at 2026-12-07T10:01:01+00:00 is 61 s ahead "
         "of this host's clock, past the 60 s allowed"),
        (None, "event.occurred_at is missing: the event's age cannot be checked"),
    ],
)  # fmt: skip
def test_an_event_is_taken_within_the_limit_and_the_skew(occurred, verdict) -> None:
    assert age_problem(occurred, NOW, LIMIT, SKEW) == verdict
