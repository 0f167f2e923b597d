"""On resolve: the timeline goes into the bundle and a closing note gives TTA and TTR vs the SLA."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks.gateways.pagerduty import IncidentRef
from tasks.run import first_response
from tasks.run.state import RunState, save_run
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.sla import actions, closing
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_pagerduty_webhook import event
from tests.support import PD_TOKEN
from triage import report
from triage.models import Classification, Priority, parse_pagerduty
from triage.policy import builtin
from triage.sla import deadlines

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def happened(rt: Runtime, incident: str, kind: str, at: datetime, by: str = "Dana") -> None:
    payload = event(
        f"incident.{kind}", id=incident, status=kind if kind != "triggered" else "triggered"
    )
    payload["event"]["occurred_at"] = at.isoformat()
    payload["event"]["agent"] = {"id": "PU1", "type": "user_reference", "summary": by}
    rt.incidents.apply(parse_pagerduty(payload))


def start_run(rt: Runtime, run_id: str, incident: str, priority: Priority) -> None:
    """Store a pipeline run for `incident` triggered at T0 and start its clocks."""
    state = RunState(
        run_id=run_id, delivery_id=f"d-{run_id}", run=1, incident_key=f"k-{run_id}",
        alert_name="RiskManagerDown", title="RiskManagerDown",
        classification=Classification(priority, "r", "x"), fingerprints=[],
        deadlines=deadlines(priority, T0, builtin()), collectors=[], services=[],
        incident_id=incident,
    )  # fmt: skip
    save_run(rt, state)
    first_response.start_clock(rt, state)


def test_closing_note_and_timeline(
    settings: Settings, pagerduty: FakePagerDuty, redis_client, tmp_path: Path
) -> None:
    rt = Runtime(replace(settings, bundle_dir=tmp_path))
    incident = pagerduty.add_incident("k-close")
    start_run(rt, "run-close-r1", incident, Priority.P1)
    happened(rt, incident, "triggered", T0)
    happened(rt, incident, "acknowledged", T0 + timedelta(minutes=3))
    actions.escalate(rt, IncidentRef(incident, "k-close"), "resolve@test")
    happened(rt, incident, "resolved", T0 + timedelta(minutes=52))

    resolved_at = T0 + timedelta(minutes=52)
    first = closing.close(rt, incident, resolved_at, T0 + timedelta(minutes=53))
    closing.close(rt, incident, resolved_at, T0 + timedelta(minutes=54))  # redelivered: one note

    assert first == "[P1 (PagerDuty: P2)] Resolved. Incident metrics against the SLA:"
    [note] = pagerduty.notes_for(incident)
    assert "- acknowledged after 3m (SLA 15m: met)" in note["content"]
    assert "- resolved after 52m (SLA 8h of market hours: met)" in note["content"]
    events = json.loads((tmp_path / "run-close-r1" / "timeline.json").read_text())
    # PagerDuty's moments at their times, then what the responder did (on the real clock).
    assert [e["what"] for e in events] == [
        "triggered",
        "acknowledged",
        "resolved",
        "escalated to level 2",
        "note: [P1 (PagerDuty: P2)] Resolved. Incident metrics against the SLA:",
        "status update posted: Resolved",
    ]
    assert events[1]["by"] == "Dana" and events[-2]["by"] == events[-1]["by"] == "responder"
    # The record the pipeline marked feeds `responder report` the same figures.
    times = report.from_record(rt.incidents.get(incident) or {})
    assert times is not None and times.priority == Priority.P1 and times.started == T0
    assert (times.acknowledged, times.resolved) == (
        T0 + timedelta(minutes=3),
        T0 + timedelta(minutes=52),
    )


def test_a_late_acknowledgement_is_reported_missed(
    settings: Settings, pagerduty: FakePagerDuty, redis_client, tmp_path: Path
) -> None:
    rt = Runtime(replace(settings, bundle_dir=tmp_path))
    incident = pagerduty.add_incident("k-late")
    start_run(rt, "run-late-r1", incident, Priority.P0)
    happened(rt, incident, "acknowledged", T0 + timedelta(minutes=12))
    happened(rt, incident, "unacknowledged", T0 + timedelta(minutes=42))  # the ack timed out
    happened(rt, incident, "acknowledged", T0 + timedelta(minutes=50))
    happened(rt, incident, "resolved", T0 + timedelta(hours=3))
    closing.close(rt, incident, T0 + timedelta(hours=3), T0 + timedelta(hours=3))
    [note] = pagerduty.notes_for(incident)
    assert "- acknowledged after 12m (SLA 5m: MISSED)" in note["content"]  # the first one
    assert "- resolved after 3h (SLA 2h of market hours: MISSED)" in note["content"]


def record_resolution(rt: Runtime, incident: str, at: datetime) -> str:
    """Record PagerDuty's resolved webhook as the receiver does, without applying it yet."""
    payload = event("incident.resolved", id=incident, status="resolved")
    payload["event"]["occurred_at"] = at.isoformat()
    delivery_id = f"d-resolved-{incident}"
    rt.deliveries.record(
        delivery_id=delivery_id,
        source="pagerduty",
        raw_body=json.dumps(payload).encode(),
        headers={},
        dedup_keys=[(delivery_id, "-")],
        fields={},
        now=at,
    )
    return delivery_id


def test_the_closing_task_and_the_receiver_race_and_one_closing_note_results(
    settings: Settings, pagerduty: FakePagerDuty, redis_client, tmp_path: Path
) -> None:
    rt = Runtime(replace(settings, bundle_dir=tmp_path))
    incident = pagerduty.add_incident("k-race")
    start_run(rt, "run-race-r1", incident, Priority.P1)
    happened(rt, incident, "triggered", T0)
    resolved_at = T0 + timedelta(minutes=30)
    delivery_id = record_resolution(rt, incident, resolved_at)
    # The task runs before the receiver has applied the event: it applies it itself.
    assert closing.close_resolved(rt, delivery_id, resolved_at).startswith(
        "[P1 (PagerDuty: P2)] Resolved"
    )
    happened(rt, incident, "resolved", resolved_at)  # the receiver, late
    closing.close_resolved(rt, delivery_id, resolved_at)  # and a redelivered task
    [note] = pagerduty.notes_for(incident)
    assert "resolved after 30m" in note["content"]
    assert rt.incidents.get(incident)["status"] == "resolved"


def test_the_closing_task_skips_a_reopened_incident(
    settings: Settings, pagerduty: FakePagerDuty, redis_client, tmp_path: Path
) -> None:
    rt = Runtime(replace(settings, bundle_dir=tmp_path))
    incident = pagerduty.add_incident("k-wait")
    start_run(rt, "run-wait-r1", incident, Priority.P1)
    happened(rt, incident, "triggered", T0)
    resolved_at = T0 + timedelta(minutes=30)
    happened(rt, incident, "resolved", resolved_at)
    happened(rt, incident, "reopened", T0 + timedelta(minutes=31))
    assert closing.close(rt, incident, resolved_at, resolved_at) == (
        "reopened since: no closing note"
    )
    assert pagerduty.notes_for(incident) == []


def test_the_timeline_in_the_bundle_holds_no_secret(
    settings: Settings, redis_client, tmp_path: Path
) -> None:
    # A service's answer to an action, or a person's note, may carry one: redacted like every
    # bundle file.
    rt = Runtime(replace(settings, bundle_dir=tmp_path))
    rt.incidents.log("PSECRET", f"POST answered 200: token={PD_TOKEN}", "responder", T0)
    closing.write_timeline(rt, "PSECRET", "r-secret")
    timeline = (tmp_path / "r-secret" / "timeline.json").read_text()
    assert "POST answered 200" in timeline and PD_TOKEN not in timeline
