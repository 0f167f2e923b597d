"""The pipeline's plain functions run in-process, without a broker, in outbox mode."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors import registry
from tasks.gateways.pagerduty import outbox_incident_id
from tasks.run import evidence_note, first_response, prepare, resolution
from tasks.run.state import RunState, save_run
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.sla import closing
from tasks.store.incidents import escalations_key
from tasks.store.runs import run_key
from tests.fakes import barrier_collector
from tests.support import TOKEN, sample_payload
from triage import report
from triage.models import Classification, Priority
from triage.policy import builtin
from triage.sla import deadlines
from webhooks import create_app

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def outbox_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Return `settings` in outbox mode, writing under `tmp_path`."""
    return replace(
        settings,
        pagerduty_token=Secret(""),
        outbox_dir=tmp_path / "outbox",
        bundle_dir=tmp_path / "bundles",
    )


def test_outbox_mode_writes_both_notes_and_a_bundle(
    intake_settings: Settings, redis_client, tmp_path: Path
) -> None:
    # The intake queue: the session worker must not run this delivery beside the test.
    outbox = outbox_settings(intake_settings, tmp_path)
    client = create_app(outbox).test_client()
    accepted = client.post(
        "/webhooks/alertmanager",
        json=sample_payload(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).get_json()
    rt = Runtime(outbox)

    state = prepare.prepare_run(rt, accepted["delivery_id"], 1, datetime.now(UTC))
    assert state is not None and state.collectors[:3] == ["http", "trading", "prometheus"]
    assert state.affected == ["signal-generator"]
    assert state.expression.startswith("histogram_quantile(0.99")
    assert state.services[0] == "signal-generator"  # the alert's own service is checked first
    incident = first_response.resolve_incident(rt, state)
    first_response.post_first_note(rt, state, incident)
    first_response.post_first_note(rt, state, incident)  # a retried task must not post twice
    entries = [evidence_note.collect_evidence(rt, state.run_id, name) for name in state.collectors]
    evidence_note.finish_run(rt, state.run_id, entries, datetime.now(UTC))

    calls = [json.loads(p.read_text()) for p in sorted((tmp_path / "outbox").glob("*.json"))]
    outbox_id = outbox_incident_id(state.incident_key)  # the incident trigger mode would open
    assert [c["path"] for c in calls] == [f"/incidents/{outbox_id}/notes"] * 2
    assert {c["incident_key"] for c in calls} == {state.incident_key}
    first, evidence = (c["json"]["note"]["content"] for c in calls)
    assert first.startswith(
        "[P1 (PagerDuty: P2)] SignalLatencyHigh: p99 signal latency is 7.2s (over 5s)"
    )
    assert evidence.startswith(
        "[P1 (PagerDuty: P2)] SignalLatencyHigh evidence: all 5 checks passed (5 skipped)"
    )

    manifest = json.loads((tmp_path / "bundles" / state.run_id / "manifest.json").read_text())
    statuses = {c["name"]: c["status"] for c in manifest["collectors"]}
    assert statuses == {
        "http": "ok", "trading": "ok", "prometheus": "skipped", "docker": "skipped",
        "postgres": "skipped", "redis": "ok", "host": "ok", "git": "skipped",
        "network": "ok", "performance": "skipped",
    }  # fmt: skip
    assert manifest["classification"]["rule"] == "signal-latency-over-5s"
    assert (tmp_path / "bundles" / state.run_id / "http" / "health.json").is_file()
    assert (tmp_path / "bundles" / state.run_id / "summary.md").read_text().startswith("# [P1]")
    delivery = rt.deliveries.get(accepted["delivery_id"])
    assert delivery["pipeline"] == "done" and delivery["bundle_id"] == state.run_id


# The market's hours decide whether the desk hears of a P1, so the alert fires at a fixed instant
# on each side of them: the test's answer never depends on the hour it runs.
MARKET_CLOSED = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # Saturday, 05:00 in New York
MARKET_OPEN = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # Wednesday, 10:00 in New York


@pytest.mark.parametrize(
    ("fired", "clocks_left"),
    [
        (MARKET_CLOSED, ["notify_management"]),
        # "Immediate notification for P0/P1 incidents during market hours": the desk's alert
        # and, once resolved, its summary, still due at the next tick.
        (MARKET_OPEN, ["desk_alert", "desk_summary", "notify_management"]),
    ],
    ids=["market closed", "market open"],
)
def test_in_outbox_mode_the_clock_runs_and_a_resolved_group_closes_the_incident(
    intake_settings: Settings, redis_client, tmp_path: Path, fired: datetime, clocks_left: list[str]
) -> None:
    outbox = outbox_settings(intake_settings, tmp_path)
    client = create_app(outbox).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    payload = sample_payload()
    payload["groupKey"] = f"outbox-clock-{fired.timestamp()}"  # a group of its own
    payload["alerts"][0]["startsAt"] = fired.isoformat()
    accepted = client.post("/webhooks/alertmanager", json=payload, headers=auth).get_json()
    rt = Runtime(outbox)
    # No EAFIX runs here: with a Validation, its failure would rightly leave the incident open
    # (test_resolution.py); this test is about the clock, so the policy validates nothing.
    rt.policy = replace(rt.policy, on_resolved=replace(rt.policy.on_resolved, validate=()))
    state = prepare.prepare_run(rt, accepted["delivery_id"], 1, fired)
    assert state is not None
    incident = first_response.resolve_incident(rt, state)
    assert incident is not None and incident.id == outbox_incident_id(state.incident_key)
    first_response.start_clock(rt, state)
    running = {d.kind for d in rt.clock.pending() if d.incident_id == incident.id}
    assert running >= {"acknowledge", "resolve"}

    payload["status"] = "resolved"
    payload["alerts"][0].update(
        status="resolved", endsAt=(fired + timedelta(minutes=7)).isoformat()
    )
    resolved = client.post("/webhooks/alertmanager", json=payload, headers=auth).get_json()
    resolution.post_resolved_note(rt, resolved["delivery_id"])
    closed_at = fired + timedelta(minutes=8)
    first_line = closing.close_in_outbox(rt, resolved["delivery_id"], closed_at)
    noted = [json.loads(p.read_text()) for p in (tmp_path / "outbox").glob("*-note-*.json")]
    [said] = [n["json"]["note"]["content"] for n in noted if "[RESOLVED]" in str(n)]
    # The note says what happens next, as it happens: not "left to a person".
    assert "the outbox's incident is closed now" in said and "left to a person" not in said

    assert first_line == "[P1 (PagerDuty: P2)] Resolved. Incident metrics against the SLA:"
    record = rt.incidents.get(incident.id) or {}
    assert record["status"] == "resolved"
    # Every clock stopped but management's (a P1 resolved in 7 minutes still reaches it at 30)
    # and, in market hours, the desk's.
    left = sorted(d.kind for d in rt.clock.pending() if d.incident_id == incident.id)
    assert left == clocks_left
    times = report.from_record(record, rt.incidents.history(incident.id))
    assert times is not None and times.resolved == fired + timedelta(minutes=7)
    [update] = [json.loads(p.read_text()) for p in outbox.outbox_dir.glob("*-status-update-*")]
    assert "Status: Resolved" in update["json"]["message"].splitlines()

    # The group fires again: the same outbox incident starts a new cycle, clock and all.
    rt.redis.set(escalations_key(incident.id), 2)  # as the last cycle's escalations left it
    refired = fired + timedelta(hours=1)
    payload["status"] = "firing"
    payload["alerts"][0].update(status="firing", startsAt=refired.isoformat(), endsAt="")
    again = client.post("/webhooks/alertmanager", json=payload, headers=auth).get_json()
    second = prepare.prepare_run(rt, again["delivery_id"], 1, refired)
    assert second is not None
    first_response.resolve_incident(rt, second)
    first_response.start_clock(rt, second)
    assert (rt.incidents.get(incident.id) or {})["status"] == "triggered"
    assert rt.redis.get(escalations_key(incident.id)) is None  # level 2 first, again
    running = {d.kind for d in rt.clock.pending() if d.incident_id == incident.id}
    assert running >= {"acknowledge", "resolve"}


def test_an_unknown_collector_in_the_plan_is_a_skipped_entry(
    settings: Settings, redis_client, tmp_path: Path
) -> None:
    rt = Runtime(replace(settings, bundle_dir=tmp_path))
    state = RunState(
        run_id="r1", delivery_id="d1", run=1, incident_key="k", alert_name="a", title="t",
        classification=Classification(Priority.P1, "x", "y"), fingerprints=[],
        deadlines=deadlines(Priority.P1, T0, builtin()), collectors=["nosuch"], services=[],
    )  # fmt: skip
    save_run(rt, state)
    entry = evidence_note.collect_evidence(rt, "r1", "nosuch")
    assert entry["status"] == "skipped"
    assert "no collector named 'nosuch'" in entry["summary"]


def test_a_runs_collectors_wait_at_the_same_time_in_one_task(
    settings: Settings, redis_client, tmp_path: Path, monkeypatch
) -> None:
    # Two collectors that each finish only once the other is running: one after the other,
    # the first would break its barrier and fail.
    monkeypatch.setitem(registry.BUILTIN, "first", "tests.fakes.barrier_collector")
    monkeypatch.setitem(registry.BUILTIN, "second", "tests.fakes.barrier_collector")
    barrier_collector.BARRIER.reset()
    rt = Runtime(replace(settings, bundle_dir=tmp_path))
    state = RunState(
        run_id="r-threads", delivery_id="d", run=1, incident_key="k", alert_name="A", title="A",
        classification=Classification(Priority.P3, "r", "x"), fingerprints=[],
        deadlines=deadlines(Priority.P3, T0, builtin()), collectors=["first", "second"],
        services=[],
    )  # fmt: skip
    save_run(rt, state)
    entries = evidence_note.gather_evidence(rt, "r-threads")
    assert [(e["summary"], e["status"]) for e in entries] == [("met the other collector", "ok")] * 2
    assert evidence_note.gather_evidence(rt, "r-threads") == entries  # kept: a retry does not rerun


def test_a_run_saved_by_the_previous_version_gets_its_facts_from_the_delivery(
    intake_settings: Settings, redis_client, tmp_path: Path
) -> None:
    rt = Runtime(outbox_settings(intake_settings, tmp_path))
    client = create_app(rt.settings).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    payload = sample_payload(groupKey=f"legacy-{datetime.now(UTC).timestamp()}")
    accepted = client.post("/webhooks/alertmanager", json=payload, headers=auth).get_json()
    state = prepare.prepare_run(rt, accepted["delivery_id"], 1, datetime.now(UTC))
    assert state is not None
    saved = json.loads(state.to_json())  # as the previous version kept it: lines, no facts
    del saved["alerts"], saved["truncated_alerts"], saved["pagerduty_incident"]
    saved["subjects"] = ["Alerts (1 firing):"]
    rt.redis.set(run_key(state.run_id), json.dumps(saved))
    again = prepare.prepare_run(rt, accepted["delivery_id"], 1, datetime.now(UTC))
    assert again is not None and [a.name for a in again.alerts] == ["SignalLatencyHigh"]
    assert again.deadlines == state.deadlines  # the rest of the run stands
