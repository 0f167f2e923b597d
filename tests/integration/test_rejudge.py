"""Judged again when time changes the answer, on the controllable clock: an open incident whose
priority depends on the market's hours is classified again when the market opens or closes."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tasks.run import judged_again, resolution
from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, sample_payload
from tests.support.clock import NEW_YORK, Timeline, record_event, record_trigger, respond
from triage.classify import classify
from triage.models import Incident
from webhooks import create_app

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


FRIDAY_10AM = datetime(2026, 11, 27, 10, 0, tzinfo=NEW_YORK)
FRIDAY_5PM = datetime(2026, 11, 27, 17, 0, tzinfo=NEW_YORK)  # the market closes
SATURDAY_10AM = datetime(2026, 11, 28, 10, 0, tzinfo=NEW_YORK)


# raised when, acknowledged by whom (or None), judged when -> the note's second line, the
# PagerDuty priority written then (or None), our priority after
CASES = [
    ("a fall at the close while nobody acknowledged it is applied",
     FRIDAY_10AM, None, FRIDAY_5PM,
     "Lowered: no one has acknowledged it; the P3 SLA counts from now.", "PRIO3", "P3"),
    ("a fall at the close after a person acknowledged it is theirs to decide",
     FRIDAY_10AM, "Dana", FRIDAY_5PM,
     "Not lowered: Dana acknowledged it, so a person decides. It stays P1; under the policy it "
     "would now be P3.", None, "P1"),
    ("a rise at the open is acted on though a person acknowledged it",
     SATURDAY_10AM, "Dana", SUNDAY_5PM,
     "Raised at once: PagerDuty priority P1 (PagerDuty: P2), urgency high; the P1 SLA counts "
     "from now.", "PRIO1", "P1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "raised", "acknowledged_by", "judged", "says", "written", "after"),
    CASES,
    ids=[row[0] for row in CASES],
)
def test_market_data_feed_interruption_a_rise_at_once_a_fall_only_while_nobody_acknowledged(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    raised: datetime,
    acknowledged_by: str | None,
    judged: datetime,
    says: str,
    written: str | None,
    after: str,
) -> None:
    incident = pagerduty.add_incident(f"k-{case[:20]}", STALE)
    priority = received(rt, STALE, raised, "high")
    delivery_id = record_trigger(rt, incident, STALE, priority, raised)
    timeline = Timeline(pagerduty)
    respond(rt, delivery_id, raised)
    if acknowledged_by:
        record_event(rt, incident, "acknowledged", raised + STEP, by=acknowledged_by)
    timeline.run(rt, judged - timedelta(minutes=10), judged - STEP, STEP)  # the ticks before
    timeline.lines.clear()
    timeline.run(rt, judged, judged, STEP)

    judging = [line for line in timeline.lines if "Judged again" in line]
    assert len(judging) == 1, timeline.lines
    [note] = [n["content"] for n in pagerduty.notes_for(incident) if "Judged again" in n["content"]]
    assert note.splitlines()[1] == says, case
    priorities = [line.split()[-1] for line in timeline.lines if " priority PRIO" in line]
    assert priorities == ([written] if written else []), case
    record = rt.incidents.get(incident) or {}
    assert record["sla_priority"] == after, case
    # An acknowledged incident is not asked to be acknowledged again.
    kinds = {d.kind for d in rt.clock.pending() if d.incident_id == incident}
    assert ("acknowledge" in kinds) is (acknowledged_by is None and after != priority), case
    assert "rejudge" in kinds, case  # judged again at the next open or close


def stale_group(key: str, statuses: list[str]) -> dict[str, Any]:
    """Return an Alertmanager group of MarketDataStale alerts, one per status."""
    payload = sample_payload(groupKey=key)
    template = payload["alerts"][0]
    labels = {"alertname": "MarketDataStale", "category": "market-data",
              "service": "data-ingestor", "severity": "critical"}  # fmt: skip
    payload["alerts"] = [
        {
            **template,
            "labels": {**labels, "instance": f"i{number}"},
            "fingerprint": f"{key[-6:]}{number}",
            "startsAt": SATURDAY_NOON.isoformat(),
            "status": status,
            **({"endsAt": SUNDAY_4PM.isoformat()} if status == "resolved" else {}),
        }
        for number, status in enumerate(statuses)
    ]
    payload["status"] = "resolved" if set(statuses) == {"resolved"} else "firing"
    return payload


def test_market_data_feed_interruption_only_the_alerts_still_firing_are_judged_again(
    intake_settings: Settings, pagerduty: FakePagerDuty, redis_client
) -> None:
    rt = Runtime(intake_settings)
    client = create_app(intake_settings).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    key = f"rejudge-{datetime.now(UTC).timestamp()}"
    incident = pagerduty.add_incident(hashlib.sha256(key.encode()).hexdigest(), STALE)

    def post(statuses: list[str]) -> str:
        sent = client.post(
            "/webhooks/alertmanager", json=stale_group(key, statuses), headers=headers
        )
        return str(sent.get_json()["delivery_id"])

    run_id = f"{post(['firing', 'firing'])}-r1"
    firing = judged_again.firing_subjects(rt, run_id, incident)
    assert [alert.labels["instance"] for alert in firing] == ["i0", "i1"]
    [due] = judged_again.next_deadline(rt, incident, run_id, STALE, "P3", SATURDAY_NOON)
    assert (due.kind, datetime.fromisoformat(due.due)) == ("rejudge", SUNDAY_5PM)

    resolution.post_resolved_note(rt, post(["resolved", "firing"]))  # one cleared at 16:00
    firing = judged_again.firing_subjects(rt, run_id, incident)
    assert [alert.labels["instance"] for alert in firing] == ["i1"]

    resolution.post_resolved_note(rt, post(["resolved", "resolved"]))  # the whole group
    assert judged_again.firing_subjects(rt, run_id, incident) == []
    assert judged_again.next_deadline(rt, incident, run_id, STALE, "P3", SATURDAY_NOON) == []
