"""Judged again when time changes the answer, on the controllable clock: an open incident whose
priority depends on the market's hours is classified again when the market opens or closes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support.clock import NEW_YORK, Timeline, record_event, record_trigger, respond
from triage.classify import classify
from triage.models import Incident

STEP = timedelta(minutes=5)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=NEW_YORK)
SUNDAY_4PM = datetime(2026, 11, 29, 16, 0, tzinfo=NEW_YORK)
SUNDAY_5PM = datetime(2026, 11, 29, 17, 0, tzinfo=NEW_YORK)  # the market opens
STALE = "[FIRING:1] MarketDataStale (data-ingestor critical)"


@pytest.fixture
def rt(settings: Settings, redis_client, tmp_path: Path) -> Runtime:
    return Runtime(replace(settings, bundle_dir=tmp_path))


def received(rt: Runtime, title: str, at: datetime, urgency: str) -> str:
    """Return the priority the receiver gives a PagerDuty incident titled `title` at `at`."""
    incident = Incident("P-any", title, "triggered", urgency=urgency)
    return classify(incident, rt.policy, at).priority.value


def test_market_data_feed_interruption_a_feed_stale_since_saturday_is_p1_when_the_market_opens(
    rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-stale-open", STALE)
    pagerduty.incidents[incident]["urgency"] = "low"  # as PagerDuty's service sent it
    priority = received(rt, STALE, SATURDAY_NOON, "low")
    assert priority == "P3"  # "no ticks arrive while the market is closed"
    delivery_id = record_trigger(rt, incident, STALE, priority, SATURDAY_NOON, urgency="low")
    timeline = Timeline(pagerduty)
    respond(rt, delivery_id, SATURDAY_NOON)
    timeline.note(SATURDAY_NOON)
    timeline.run(rt, SATURDAY_NOON + STEP, SUNDAY_5PM + timedelta(minutes=30), STEP)
    print("\n".join(["", *timeline.lines]))

    sunday = [line for line in timeline.lines if line.startswith("Sun")]
    assert sunday[:3] == [
        f"Sun 17:00 note: [P1 (PagerDuty: P2)] Judged again: the market opened at Sun 17:00 "
        f"New York time with {STALE} still firing: P1, was P3.",
        "Sun 17:00 priority PRIO1",
        "Sun 17:00 urgency high",
    ]
    # Before: the P3's first note and priority, then nothing until the market opens.
    assert [line for line in timeline.lines if not line.startswith("Sun")] == [
        f"Sat 12:00 note: [P3 (PagerDuty: P4)] {STALE}",
        "Sat 12:00 priority PRIO3",
    ]
    note = pagerduty.notes_for(incident)[1]["content"].splitlines()
    assert note[1] == (
        "Raised at once: PagerDuty priority P1 (PagerDuty: P2), urgency high; the P1 SLA counts "
        "from now."
    )
    assert note[2].startswith("SLA: acknowledge by 2026-11-29 22:15 UTC (15m)")
    assert note[3].startswith("Why: Market data feed interruption")
    # The P1's runbook cadence from 17:00: its first status update, the missed acknowledgement.
    assert "Sun 17:05 status update: Status: Investigating" in sunday
    assert "Sun 17:15 escalation level 2" in sunday
    assert pagerduty.incidents[incident]["urgency"] == "high"
    assert (rt.incidents.get(incident) or {})["sla_priority"] == "P1"


def test_market_data_feed_interruption_a_feed_that_cleared_before_the_open_changes_nothing(
    rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-stale-cleared", STALE)
    pagerduty.incidents[incident]["urgency"] = "low"
    delivery_id = record_trigger(rt, incident, STALE, "P3", SATURDAY_NOON, urgency="low")
    timeline = Timeline(pagerduty)
    respond(rt, delivery_id, SATURDAY_NOON)
    timeline.note(SATURDAY_NOON)
    timeline.run(rt, SATURDAY_NOON + STEP, SUNDAY_4PM - STEP, STEP)
    assert "rejudge" in {d.kind for d in rt.clock.pending() if d.incident_id == incident}
    record_event(rt, incident, "resolved", SUNDAY_4PM)
    timeline.run(rt, SUNDAY_4PM, SUNDAY_5PM + timedelta(minutes=30), STEP)

    assert not [line for line in timeline.lines if line.startswith("Sun")]
    assert pagerduty.incidents[incident]["urgency"] == "low"
    assert not [d for d in rt.clock.pending() if d.incident_id == incident and d.kind == "rejudge"]
