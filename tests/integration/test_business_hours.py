"""P2 "Page during business hours", P3 "Handle during business hours", on the controllable clock:
what PagerDuty receives, and when, for incidents raised in and out of business hours."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support.clock import NEW_YORK, Timeline, record_trigger, respond

MINUTES = timedelta(minutes=5)
SATURDAY_2AM = datetime(2026, 11, 28, 2, 0, tzinfo=NEW_YORK)
MONDAY_9AM = datetime(2026, 11, 30, 9, 0, tzinfo=NEW_YORK)
TITLE = "[FIRING:1] ServiceDown (warning outage gui-gateway)"


@pytest.fixture
def rt(settings: Settings, redis_client, tmp_path: Path) -> Runtime:
    return Runtime(replace(settings, bundle_dir=tmp_path))


LOWERED = [
    "Sat 02:00 urgency low",  # PagerDuty pages no one at night
    "PagerDuty urgency is low until then and high again from then.",
]
# "Never lower a page PagerDuty sent high": PagerDuty's service chose it.
KEPT = [None, "PagerDuty urgency stays as PagerDuty set it (the responder lowers only the urgency "
        "of an incident it opened)."]  # fmt: skip


@pytest.mark.parametrize(
    ("opened_by_responder", "urgency"),
    [(True, LOWERED), (False, KEPT)],
    ids=["the responder opened it: urgency low", "PagerDuty opened it: never lowered"],
)
def test_a_p2_raised_saturday_2am_new_york_waits_for_monday_9am(
    rt: Runtime, pagerduty: FakePagerDuty, opened_by_responder: bool, urgency: list[str | None]
) -> None:
    incident = pagerduty.add_incident("k-saturday", TITLE)
    delivery_id = record_trigger(rt, incident, TITLE, "P2", SATURDAY_2AM)
    if opened_by_responder:  # as trigger mode's Events API call leaves its run
        rt.deliveries.mark_effect(f"{delivery_id}-r1", "trigger", "k-saturday")
    timeline = Timeline(pagerduty)

    state = respond(rt, delivery_id, SATURDAY_2AM)
    timeline.note(SATURDAY_2AM)
    timeline.run(rt, SATURDAY_2AM + MINUTES, MONDAY_9AM + timedelta(hours=2), MINUTES)
    print("\n".join(["", *timeline.lines]))  # the run, as `pytest -s` shows it

    lowered = [urgency[0]] if urgency[0] else []
    assert timeline.lines == [
        f"Sat 02:00 note: [P2 (PagerDuty: P3)] {TITLE}",
        *lowered,
        "Sat 02:00 priority PRIO2",
        # Nothing for 55 hours, then the business opening:
        "Mon 09:00 status update: Status: Investigating",  # the first, when the clock starts
        "Mon 09:00 urgency high",  # "Page during business hours": paged now
        "Mon 09:00 note: [P2/P3] Next business day summary for management: 1 incident from "
        "Fri 09:00 New York time to Mon 09:00 New York time",
        "Mon 10:00 escalation level 2",  # not acknowledged within 1h of business hours
        "Mon 10:00 note: [P2 (PagerDuty: P3)] "
        "SLA missed: not acknowledged within 1h of business hours "
        "(due 15:00 UTC, 0m late). Escalated to level 2.",
        "Mon 11:00 status update: Status: Investigating",  # every 2 hours
    ]
    first = pagerduty.notes_for(incident)[0]["content"].splitlines()
    assert first[3] == (
        "SLA: acknowledge by 2026-11-30 15:00 UTC (1h of business hours) | respond by "
        "2026-11-30 18:00 UTC (4h of business hours) | resolve by 2026-12-01 14:00 UTC (24h) | "
        "updates every 2h"
    )
    assert first[4] == (
        "Outside business hours: escalations, responder requests and status updates start "
        f"Mon 09:00 New York time, when the SLA clock starts; {urgency[1]}"
    )
    assert state.deadlines.starts == MONDAY_9AM
