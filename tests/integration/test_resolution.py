"""Every alert of a group resolved: clocks stopped, the runbook's Validation run against a living
EAFIX (the demo simulator), and the PagerDuty incident resolved only when the policy says so."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from demo.simulator import Simulator
from tasks.run import first_response, prepare, resolution
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.sla import closing
from tasks.store.sla_clock import deadlines_for
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, sample_payload
from triage.models import Priority
from triage.sla import deadlines
from webhooks import create_app


@pytest.fixture(scope="module")
def eafix() -> Iterator[Simulator]:
    """Run the six simulated EAFIX services on free loopback ports."""
    simulator = Simulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture
def rt(intake_settings: Settings, redis_client, eafix: Simulator) -> Runtime:
    """Return a runtime whose catalog points at the simulator (its health and flow endpoints)."""
    eafix.clear()
    runtime = Runtime(intake_settings)
    catalog = {
        name: replace(service, health_url=f"{eafix.url(name)}/healthz")
        for name, service in runtime.policy.catalog.items()
    }
    runtime.policy = replace(runtime.policy, catalog=catalog)
    return runtime


def group(key: str, statuses: list[str], fired: datetime) -> dict[str, Any]:
    """Return an Alertmanager group with one alert per status, resolved ones 32 minutes on."""
    payload = sample_payload(groupKey=key)
    template = payload["alerts"][0]
    payload["alerts"] = []
    for number, status in enumerate(statuses):
        alert = {
            **template,
            "labels": {**template["labels"], "instance": f"i{number}"},
            "fingerprint": f"{key[-8:]}{number}",
            "startsAt": fired.isoformat(),
            "status": status,
        }
        if status == "resolved":
            alert["endsAt"] = (fired + timedelta(minutes=32)).isoformat()
        payload["alerts"].append(alert)
    payload["status"] = "resolved" if set(statuses) == {"resolved"} else "firing"
    return payload


def resolve(settings: Settings, rt: Runtime, payload: dict[str, Any]) -> str:
    """Record the resolution as the receiver does, then run the resolved-note task's work."""
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    accepted = client.post("/webhooks/alertmanager", json=payload, headers=headers).get_json()
    return resolution.post_resolved_note(rt, accepted["delivery_id"])


# What the alerts did, what broke meanwhile, whether the policy resolves incidents ->
# clocks left running, validation lines, the incident's status, the note's last words
CASES = [
    ("every alert cleared, validation passed: a person resolves it",
     ["resolved"], "", False,
     {"resolve", "next_update", "notify_management"},
     ["- OK http: 6/6 services healthy", "- OK flow: tick accepted; a signal"],
     "triggered", "on_resolved.resolve_incident is off)."),
    ("every alert cleared, validation passed: the policy resolves it",
     ["resolved", "resolved"], "", True,
     {"resolve", "next_update", "notify_management"},
     ["- OK http: 6/6 services healthy", "- OK flow: tick accepted; a signal"],
     "resolved", "every check passed (policy: on_resolved.resolve_incident)."),
    ("every alert cleared but the gateway is down: left open",
     ["resolved"], "gateway-down", True,
     {"resolve", "next_update", "notify_management"},
     ["- FAILED http: 5/6 services healthy; gui-gateway down"],
     "triggered", "a check did not pass. Resolve it once the system is well."),
    ("an alert still fires: nothing stopped or validated",
     ["resolved", "firing"], "", True,
     {"acknowledge", "respond", "resolve", "next_update", "notify_management"},
     [], "triggered", "No diagnostics run while alerts of the group still fire."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "statuses", "broken", "resolve_incident", "running", "checks", "status", "ends"),
    CASES,
    ids=[row[0] for row in CASES],
)
def test_resolution_validation_and_immediate_notification_when_resolved(
    intake_settings: Settings,
    rt: Runtime,
    eafix: Simulator,
    pagerduty: FakePagerDuty,
    case: str,
    statuses: list[str],
    broken: str,
    resolve_incident: bool,
    running: set[str],
    checks: list[str],
    status: str,
    ends: str,
) -> None:
    on_resolved = replace(rt.policy.on_resolved, resolve_incident=resolve_incident)
    rt.policy = replace(rt.policy, on_resolved=on_resolved)
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    key = f"resolution-{datetime.now(UTC).timestamp()}"
    incident = pagerduty.add_incident(hashlib.sha256(key.encode()).hexdigest())
    due = deadlines(Priority.P1, fired, rt.policy).to_dict()
    rt.clock.register(deadlines_for(incident, "run-1", "SignalLatencyHigh", due))
    if broken:
        eafix.inject(broken)

    resolve(intake_settings, rt, group(key, statuses, fired))

    assert {d.kind for d in rt.clock.pending() if d.incident_id == incident} == running
    [note] = pagerduty.notes_for(incident)
    lines = note["content"].splitlines()
    assert lines[0] == "[RESOLVED] SignalLatencyHigh: resolved in Alertmanager"
    assert "after 32m" in lines[2]
    for check in checks:
        assert any(line.startswith(check) for line in lines), (check, lines)
    assert pagerduty.incidents[incident]["status"] == status
    assert any(ends in line for line in lines), lines


def test_a_retried_resolution_notes_once_and_ticks_eafix_once(
    intake_settings: Settings, rt: Runtime, eafix: Simulator, pagerduty: FakePagerDuty
) -> None:
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    key = f"resolution-retry-{datetime.now(UTC).timestamp()}"
    incident = pagerduty.add_incident(hashlib.sha256(key.encode()).hexdigest())
    # The note fails once, after the validation ran: the retry posts what it found.
    pagerduty.fail_next(503, method="POST", path_suffix="/notes")
    client = create_app(intake_settings).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    payload = group(key, ["resolved"], fired)
    delivery = client.post("/webhooks/alertmanager", json=payload, headers=headers).get_json()
    with pytest.raises(Exception, match="HTTP 503"):
        resolution.post_resolved_note(rt, delivery["delivery_id"])
    settled = rt.redis.get(f"responder:settled:{delivery['delivery_id']}")
    assert settled is not None  # the validation's findings were kept before the note
    resolution.post_resolved_note(rt, delivery["delivery_id"])
    resolution.post_resolved_note(rt, delivery["delivery_id"])
    assert len(pagerduty.notes_for(incident)) == 1


@pytest.mark.parametrize(
    ("case", "broken", "status", "says"),
    [
        ("validation passed: the outbox's incident is closed", "", "resolved",
         "the outbox's incident is closed now"),
        ("validation FAILED: the outbox's incident stays open", "gateway-down", "triggered",
         "a check did not pass. Resolve it once the system is well."),
    ],
)  # fmt: skip
def test_validation_in_outbox_mode_an_incident_whose_validation_failed_stays_open(
    intake_settings: Settings,
    rt: Runtime,
    eafix: Simulator,
    tmp_path: Path,
    case: str,
    broken: str,
    status: str,
    says: str,
) -> None:
    outbox = replace(
        intake_settings,
        pagerduty_token=Secret(""),
        outbox_dir=tmp_path / "outbox",
        bundle_dir=tmp_path / "bundles",
    )
    runtime = Runtime(outbox)
    runtime.policy = rt.policy  # the simulator's catalog
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    key = f"outbox-resolution-{datetime.now(UTC).timestamp()}"
    firing = (
        create_app(outbox)
        .test_client()
        .post(
            "/webhooks/alertmanager",
            json=group(key, ["firing"], fired),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    )
    state = prepare.prepare_run(runtime, firing.get_json()["delivery_id"], 1, fired)
    assert state is not None
    incident = first_response.resolve_incident(runtime, state)
    assert incident is not None and incident.id
    first_response.start_clock(runtime, state)
    if broken:
        eafix.inject(broken)

    resolved = (
        create_app(outbox)
        .test_client()
        .post(
            "/webhooks/alertmanager",
            json=group(key, ["resolved"], fired),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    )
    delivery_id = resolved.get_json()["delivery_id"]
    resolution.post_resolved_note(runtime, delivery_id)
    closing.close_in_outbox(runtime, delivery_id, fired + timedelta(minutes=33))

    assert (runtime.incidents.get(incident.id) or {})["status"] == status, case
    notes = [json.loads(p.read_text()) for p in (tmp_path / "outbox").glob("*-note-*.json")]
    [said] = [n["json"]["note"]["content"] for n in notes if "[RESOLVED]" in str(n)]
    assert says in said, said
    # Left open, its resolve clock still runs: the runbook's "< 8 hours" is not met yet.
    running = {d.kind for d in runtime.clock.pending() if d.incident_id == incident.id}
    assert ("resolve" in running) is (status == "triggered"), running


# "Resolution: Immediate notification when resolved", when Alertmanager's own PagerDuty
# receiver resolved the incident first: the note says what PagerDuty shows, never "stays open".
# the policy resolves incidents, what broke meanwhile -> the note's last words
ALREADY = [
    ("policy off, validation passed", False, "",
     "already resolved (PagerDuty says so: Alertmanager's PagerDuty receiver or a person "
     "resolved it); every check passed."),
    ("policy on, validation passed", True, "",
     "every check passed."),
    ("validation failed", True, "gateway-down",
     "but a check did not pass: look at the system before trusting it."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "resolve_incident", "broken", "ends"), ALREADY, ids=[row[0] for row in ALREADY]
)
def test_resolution_notification_reads_the_incidents_state_from_pagerduty(
    intake_settings: Settings,
    rt: Runtime,
    eafix: Simulator,
    pagerduty: FakePagerDuty,
    case: str,
    resolve_incident: bool,
    broken: str,
    ends: str,
) -> None:
    on_resolved = replace(rt.policy.on_resolved, resolve_incident=resolve_incident)
    rt.policy = replace(rt.policy, on_resolved=on_resolved)
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    key = f"resolution-already-{datetime.now(UTC).timestamp()}"
    incident = pagerduty.add_incident(hashlib.sha256(key.encode()).hexdigest())
    pagerduty.incidents[incident]["status"] = "resolved"  # Alertmanager's receiver got there first
    if broken:
        eafix.inject(broken)

    resolve(intake_settings, rt, group(key, ["resolved"], fired))

    [note] = pagerduty.notes_for(incident)
    said = note["content"]
    assert "stays open" not in said, case
    assert "The PagerDuty incident is already resolved" in said and ends in said, said
    # PagerDuty was asked, and nothing tried to resolve it a second time.
    assert any(
        c.method == "GET" and c.path.endswith(f"/incidents/{incident}") for c in pagerduty.calls
    )
    assert not [c for c in pagerduty.calls if c.method == "PUT" and c.path.endswith(incident)], case
