"""Trigger mode: with no incident to attach to, open one through the Events API v2, then attach;
set the incident's priority from the classification when the account has priorities."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import yaml

from tasks.run import first_response, prepare
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import PUBLIC_URL, TOKEN, sample_payload
from webhooks import create_app


def test_trigger_then_attach_and_set_priority(
    settings: Settings, test_policy: Path, pagerduty: FakePagerDuty, redis_client, tmp_path: Path
) -> None:
    policy = yaml.safe_load(test_policy.read_text())
    policy["pagerduty"] = {"incident": "trigger", "set_priority": True}
    path = tmp_path / "trigger.yaml"
    path.write_text(yaml.safe_dump(policy))
    trigger = replace(
        settings,
        policy_path=str(path),
        pagerduty_routing_key=Secret("R" * 32),
        pagerduty_events_url=pagerduty.base_url,
        bundle_dir=tmp_path / "bundles",
        queue="responder-trigger-test",
    )
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", triggered="by-us"}')
    accepted = (
        create_app(trigger)
        .test_client()
        .post("/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"})
        .get_json()
    )
    rt = Runtime(trigger)
    now = datetime.now(UTC)
    state = prepare.prepare_run(rt, accepted["delivery_id"], 1, now)
    assert first_response.resolve_incident(rt, state) is None

    assert first_response.trigger_incident(rt, state, now) is True
    assert first_response.trigger_incident(rt, state, now) is False  # once per run
    incident = first_response.resolve_incident(rt, state)
    assert incident is not None and incident.id
    first_response.post_first_note(rt, state, incident)
    first_response.set_incident_priority(rt, state, incident)
    first_response.set_incident_priority(rt, state, incident)  # once: no second PUT

    [event] = pagerduty.events
    assert event["dedup_key"] == state.incident_key
    assert event["payload"]["severity"] == "error"  # our P1
    assert event["payload"]["summary"].startswith("[P1 (PagerDuty: P2)] SignalLatencyHigh")
    assert event["links"][0]["href"].startswith(f"{PUBLIC_URL}/bundles/{state.run_id}/?expires=")
    assert pagerduty.incidents[incident.id]["priority"]["summary"] == "P2"  # the account's name
    assert len([c for c in pagerduty.calls if c.method == "PUT"]) == 1
    assert len(pagerduty.notes_for(incident.id)) == 1
    redis_client.delete("responder-trigger-test")
