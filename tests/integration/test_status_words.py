"""Status words mean what the runbook means: Investigating until a person says otherwise with a
note command, Resolved on resolve; the ETA is a person's word. Through the real receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tasks.names import ANSWER_NOTE
from tasks.notes import markers
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.sla import note_answers
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_pagerduty_webhook import HISTORY, SECRET, annotated, event, post
from tests.support import INTAKE_QUEUE
from triage.incident_status import status_now
from webhooks import create_app

T0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
DANA = {"id": "PU1", "type": "user_reference", "summary": "Dana On-Call"}


@pytest.fixture
def pd_settings(intake_settings: Settings) -> Settings:
    # The happenings are recorded history (T0): the replay window is opened to take them.
    return replace(intake_settings, pagerduty_webhook_secrets=(Secret(SECRET),), **HISTORY)


@pytest.fixture
def client(pd_settings: Settings) -> Iterator[FlaskClient]:
    yield create_app(pd_settings).test_client()


def happening(what: str, incident: str, n: int) -> dict[str, Any]:
    """Return PagerDuty's webhook for one thing that happens, n minutes after T0."""
    if what in ("acknowledged", "unacknowledged", "resolved", "reopened"):
        status = {"unacknowledged": "triggered", "reopened": "triggered"}.get(what, what)
        payload = event(f"incident.{what}", id=incident, status=status, event_id=n)
    else:  # a note; "ours:" marks one the responder posted, coming back
        content = what.removeprefix("ours:")
        if what.startswith("ours:"):
            content += "\n" + markers.reference("run-1", "status_note")
        payload = annotated(f"NOTE{n}", content)
        payload["event"]["data"]["incident"]["id"] = incident
    payload["event"]["occurred_at"] = (T0 + timedelta(minutes=n)).isoformat()
    payload["event"]["agent"] = DANA
    return payload


@pytest.mark.parametrize(
    ("case", "happenings", "status", "actions", "eta"),
    [
        ("Investigating from the start", [], "Investigating",
         "automated diagnostics attached; waiting for acknowledgement", "unknown"),
        ("acknowledged is still Investigating", ["acknowledged"], "Investigating",
         "automated diagnostics attached; on-call engineer engaged", "unknown"),
        ("unacknowledged is still Investigating", ["acknowledged", "unacknowledged"],
         "Investigating", "automated diagnostics attached; waiting for acknowledgement",
         "unknown"),
        ("a person sets Identified", ["acknowledged", "/status identified pool exhausted"],
         "Identified", "pool exhausted (Dana On-Call)", "unknown"),
        ("a person sets Monitoring and an ETA",
         ["/status identified pool exhausted", "/status monitoring pool resized\n/eta 30m"],
         "Monitoring", "pool resized (Dana On-Call)", "2026-11-30 15:32 UTC"),
        ("an ETA taken back", ["/eta 2h", "/eta unknown"], "Investigating",
         "automated diagnostics attached; waiting for acknowledgement", "unknown"),
        ("our own note is never acted on", ["ours:/status identified by the responder"],
         "Investigating", "automated diagnostics attached; waiting for acknowledgement",
         "unknown"),
        ("a malformed command changes nothing", ["/status fixed", "/eta soon"], "Investigating",
         "automated diagnostics attached; waiting for acknowledgement", "unknown"),
        ("Resolved on resolve", ["/status monitoring pool resized", "resolved"], "Resolved",
         "resolved by Dana On-Call", "resolved"),
        ("reopened: Investigating again", ["/status identified x", "resolved", "reopened"],
         "Investigating", "automated diagnostics attached; waiting for acknowledgement",
         "unknown"),
    ],
)  # fmt: skip
def test_update_template_status_investigating_identified_monitoring_resolved(
    client: FlaskClient,
    pd_settings: Settings,
    case: str,
    happenings: list[str],
    status: str,
    actions: str,
    eta: str,
) -> None:
    rt = Runtime(pd_settings)
    incident = "PWORDS1"
    rt.incidents.mark_clock(incident, "P1", T0.isoformat(), "run-1")
    for n, what in enumerate(happenings, start=1):
        assert post(client, happening(what, incident, n), webhook_id=f"wh-{n}").status_code == 202
    now = T0 + timedelta(minutes=20)
    update = rt.voice.status_update(
        incident, status_now(rt.incidents.get(incident) or {}, now), "RiskCheckErrors", now
    )
    assert update.splitlines()[1:5] == [
        f"Status: {status}",
        "Impact: RiskCheckErrors; user impact: not known yet (see the evidence note)",
        f"Actions: {actions}", f"ETA: {eta}",
    ], case  # fmt: skip


def test_a_malformed_command_is_answered_once_and_the_answer_is_not_acted_on(
    client: FlaskClient, pd_settings: Settings, pagerduty: FakePagerDuty, redis_client
) -> None:
    rt = Runtime(pd_settings)
    incident = pagerduty.add_incident("k-words")
    answer = post(client, happening("/status fixed it\n/deploy now", incident, 1), webhook_id="w1")
    delivery_id = answer.get_json()["delivery_id"]
    assert rt.deliveries.get(delivery_id)["pipeline"] == (
        "not started: note commands: malformed '/status fixed it' (answered); "
        "/deploy ignored (not ours)"
    )
    [queued] = [json.loads(m) for m in redis_client.lrange(INTAKE_QUEUE, 0, -1)]
    assert queued["headers"]["task"] == ANSWER_NOTE
    assert delivery_id in queued["headers"]["argsrepr"]
    note_answers.answer_malformed(rt, delivery_id)
    note_answers.answer_malformed(rt, delivery_id)  # the task ran twice: one answer
    [note] = pagerduty.notes_for(incident)
    assert note["content"].splitlines()[:2] == [
        "Note command not applied (note by Dana On-Call):",
        '- "/status fixed it": expected one of investigating, identified, monitoring, '
        "then what you found or did",
    ]
    # The answer comes back as incident.annotated: ours, so neither applied nor answered.
    echo = annotated(note["id"], note["content"])
    echo["event"]["data"]["incident"]["id"] = incident
    again = post(client, echo, webhook_id="w2").get_json()
    assert rt.deliveries.get(again["delivery_id"])["pipeline"] == "ignored: our own note"
    assert redis_client.llen(INTAKE_QUEUE) == 1
    assert "said_status" not in (rt.incidents.get(incident) or {})


def test_a_note_without_commands_is_only_recorded(
    client: FlaskClient, pd_settings: Settings, redis_client
) -> None:
    answer = post(client, happening("Looking at the risk manager.", "PWORDS2", 1))
    record = Runtime(pd_settings).deliveries.get(answer.get_json()["delivery_id"])
    assert record["pipeline"] == "not started: a note was added"
    assert redis_client.llen(INTAKE_QUEUE) == 0
