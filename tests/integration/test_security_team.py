"""The first response calls the security team in, once per incident, against the fake PagerDuty.

The runbook: "Security breach with active exploitation" is P0; a spike of failed logins is
suspicious activity, P1. Both need the security team ("Security Team: [24/7 Phone]").
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tasks.run import first_response, prepare
from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, sample_payload
from triage.policy import SecurityTeam
from webhooks import create_app

SECURITY = SecurityTeam(
    requester_id="PREQ001", targets=(("PSEC001", "escalation_policy_reference"),)
)


def alert_group(labels: dict[str, str], key: str, fingerprint: str = "f-sec-1") -> dict[str, Any]:
    """Return an Alertmanager group of one firing alert with `labels`, as a group of its own."""
    payload = sample_payload()
    payload["groupKey"] = key
    payload["alerts"][0].update(
        labels=labels,
        annotations={"summary": f"{labels['alertname']} fired"},
        fingerprint=fingerprint,
        startsAt=datetime.now(UTC).isoformat(),
        generatorURL="",
    )
    payload["commonLabels"] = labels
    payload["commonAnnotations"] = {}
    return payload


def respond(settings: Settings, rt: Runtime, payload: dict[str, Any]) -> Any:
    """Record `payload` as the receiver does, then run the first response's steps in-process."""
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    accepted = client.post("/webhooks/alertmanager", json=payload, headers=headers).get_json()
    state = prepare.prepare_run(rt, accepted["delivery_id"], 1, datetime.now(UTC))
    assert state is not None
    incident = first_response.resolve_incident(rt, state)
    first_response.post_first_note(rt, state, incident)
    first_response.call_in_security(rt, state, incident)
    first_response.call_in_security(rt, state, incident)  # a retried task calls nobody twice
    return state


@pytest.fixture
def rt(intake_settings: Settings, redis_client) -> Runtime:
    runtime = Runtime(intake_settings)
    policy = runtime.policy
    runtime.policy = replace(policy, pagerduty=replace(policy.pagerduty, security=SECURITY))
    return runtime


# alert labels, priority, whether the security team is called in
CASES = [
    ("a spike of failed logins (P1) calls the security team in",
     {"alertname": "AuthFailureSpike", "category": "security", "service": "gui-gateway",
      "severity": "critical"}, "P1", True),
    ("active exploitation (P0) calls the security team in",
     {"alertname": "UnauthorizedTrade", "category": "security", "exploitation": "confirmed",
      "service": "execution-engine", "severity": "critical"}, "P0", True),
    ("a risk manager failure (P0) does not",
     {"alertname": "RiskManagerDown", "category": "risk-management", "service": "risk-manager",
      "severity": "critical"}, "P0", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "labels", "priority", "called"), CASES, ids=[row[0] for row in CASES]
)
def test_security_breach_and_suspicious_activity_page_the_security_team_once(
    intake_settings: Settings,
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    labels: dict[str, str],
    priority: str,
    called: bool,
) -> None:
    key = f"security-{labels['alertname']}-{datetime.now(UTC).timestamp()}"
    incident = pagerduty.add_incident(hashlib.sha256(key.encode()).hexdigest())
    state = respond(intake_settings, rt, alert_group(labels, key))
    assert str(state.classification.priority) == priority

    [first] = pagerduty.notes_for(incident)
    requests = pagerduty.responder_requests.get(incident, [])
    if not called:
        assert requests == []
        assert "Security team" not in first["content"]
        return
    [request] = requests
    assert request["requester"]["id"] == "PREQ001"
    assert request["responder_request_targets"] == [
        {"responder_request_target": {"id": "PSEC001", "type": "escalation_policy_reference"}}
    ]
    assert request["message"] == f"EAFIX {priority} security incident: {state.title}"
    assert (
        "Security team: called in by a PagerDuty responder request to PSEC001 (escalation "
        "policy), sent with this note." in first["content"].splitlines()
    )
    # Another alert of the same incident (a new run) calls no one again.
    respond(intake_settings, rt, alert_group(labels, key, fingerprint="f-sec-2"))
    assert len(pagerduty.responder_requests[incident]) == 1
    again = pagerduty.notes_for(incident)[-1]["content"].splitlines()
    assert "Security team: asked for already, by an earlier response to this incident." in again
    history = [entry["what"] for entry in rt.incidents.history(incident)]
    assert "security team requested from PSEC001 (escalation policy)" in history


def test_without_a_security_target_the_first_note_asks_for_it_by_hand(
    intake_settings: Settings, rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    rt.policy = replace(rt.policy, pagerduty=replace(rt.policy.pagerduty, security=None))
    key = f"security-by-hand-{datetime.now(UTC).timestamp()}"
    incident = pagerduty.add_incident(hashlib.sha256(key.encode()).hexdigest())
    labels = {"alertname": "AuthFailureSpike", "category": "security", "severity": "critical"}
    respond(intake_settings, rt, alert_group(labels, key))
    assert pagerduty.responder_requests.get(incident, []) == []
    [first] = pagerduty.notes_for(incident)
    assert (
        "Security team: call them in by hand now (the policy names no one to request: "
        "pagerduty.security)." in first["content"].splitlines()
    )


def test_a_request_pagerduty_refuses_leaves_a_note_to_do_it_by_hand(
    intake_settings: Settings, rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    key = f"security-refused-{datetime.now(UTC).timestamp()}"
    incident = pagerduty.add_incident(hashlib.sha256(key.encode()).hexdigest())
    # 402: the account has no coordinated responding; final, not retried.
    pagerduty.fail_next(402, method="POST", path_suffix="/responder_requests")
    labels = {"alertname": "AuthFailureSpike", "category": "security", "severity": "critical"}
    respond(intake_settings, rt, alert_group(labels, key))
    notes = [note["content"].splitlines()[0] for note in pagerduty.notes_for(incident)]
    assert notes[1] == (
        "[P1 (PagerDuty: P2)] "
        "Calling in the security team failed: PagerDuty refused the responder request to "
        "PSEC001 (escalation policy) (PagerDuty POST responder request failed: HTTP 402). "
        "Call them in by hand now."
    )
    assert len(notes) == 2  # the retry of the task neither asks again nor notes again
