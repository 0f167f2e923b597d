"""POST /webhooks/pagerduty against real Redis: signatures, event types, dedup, one pipeline."""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from tasks.gateways.pagerduty import IncidentRef
from tasks.lanes import urgent_queue
from tasks.names import CLOSE_INCIDENT
from tasks.notes import markers as notes
from tasks.pagerduty.notes import post_note_once
from tasks.run import first_response, prepare
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.store.deliveries import dedup_key
from tests.support import INTAKE_QUEUE, PD_WEBHOOK_SECRET, PROJECT, TOKEN, sample_payload
from webhooks import create_app
from webhooks.pagerduty import NOTE_ADDED

SECRET = PD_WEBHOOK_SECRET
OLD_SECRET = "whsec-previous-1c7d"
EVENT = json.loads((PROJECT / "examples" / "pagerduty-incident-triggered.json").read_text())


EVENT_AGENT = EVENT["event"]["agent"]["summary"]
# Tests that post recorded events (the example's occurred_at is a fixed day) open the replay
# window this wide; tests/integration/test_pagerduty_replay.py tests the window itself.
HISTORY = {"pagerduty_event_max_age_seconds": 10 * 365 * 86400.0}


def now_iso() -> str:
    """Return the current time as PagerDuty writes occurred_at."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event(event_type: str = "incident.triggered", **data: Any) -> dict[str, Any]:
    payload = copy.deepcopy(EVENT)
    payload["event"]["event_type"] = event_type
    payload["event"]["id"] = f"evt-{event_type}-{data.pop('event_id', 1)}"
    payload["event"]["occurred_at"] = now_iso()  # sent as it happens, as PagerDuty does
    payload["event"]["data"].update(data)
    return payload


@pytest.fixture
def pd_settings(intake_settings: Settings) -> Settings:
    secrets = (Secret(OLD_SECRET), Secret(SECRET))
    return replace(intake_settings, pagerduty_webhook_secrets=secrets, **HISTORY)


@pytest.fixture
def client(pd_settings: Settings) -> Iterator[FlaskClient]:
    yield create_app(pd_settings).test_client()


def post(
    client: FlaskClient,
    payload: Any,
    *,
    signature: str | None = None,
    webhook_id: str | None = "wh-1",
    body: bytes | None = None,
):
    raw = body if body is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "PagerDuty-Webhook/V3.0"}
    headers["X-PagerDuty-Signature"] = sign(raw) if signature is None else signature
    if webhook_id:
        headers["X-Webhook-Id"] = webhook_id
    if signature == "":
        del headers["X-PagerDuty-Signature"]
    return client.post("/webhooks/pagerduty", data=raw, headers=headers)


def delivery(client: FlaskClient, delivery_id: str) -> dict[str, Any]:
    return client.get(
        f"/deliveries/{delivery_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_json()


def test_a_chunked_body_past_256_kb_is_413(client: FlaskClient) -> None:
    body = json.dumps(event()).encode() + b" " * (400 * 1024)
    response = client.post(
        "/webhooks/pagerduty",
        input_stream=io.BytesIO(body),
        headers={
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "X-PagerDuty-Signature": sign(body),
        },
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json() == {"error": "request body too large", "field": "(body)"}


# --- signatures --------------------------------------------------------------------------


def test_a_valid_signature_is_accepted_and_the_incident_classified(client: FlaskClient) -> None:
    answer = post(client, EVENT)
    assert answer.status_code == 202
    assert answer.get_json()["priority"] == "P0"  # RiskManagerDown in the title
    stored = delivery(client, answer.get_json()["delivery_id"])
    assert stored["pipeline"] == "queued"
    assert stored["classification"]["rule"] == "risk-management-failure"


def test_two_signatures_one_valid_is_accepted(client: FlaskClient) -> None:
    body = json.dumps(EVENT).encode()
    both = f"{sign(body, 'some-other-secret')},{sign(body)}"
    assert post(client, EVENT, signature=both, body=body).status_code == 202


def test_a_rotation_with_two_secrets_accepts_the_old_one(client: FlaskClient) -> None:
    body = json.dumps(EVENT).encode()
    assert post(client, EVENT, signature=sign(body, OLD_SECRET), body=body).status_code == 202


@pytest.mark.parametrize(
    ("case", "mangle", "status", "error"),
    [
        ("tampered body", lambda b, s: (b.replace(b"high", b"low!"), s), 403,
         "signature matches no configured secret"),
        ("wrong secret", lambda b, s: (b, sign(b, "not-our-secret")), 403,
         "signature matches no configured secret"),
        ("body re-serialised", lambda b, s: (json.dumps(json.loads(b), indent=1).encode(), s), 403,
         "signature matches no configured secret"),
        ("missing header", lambda b, s: (b, ""), 400, "missing X-PagerDuty-Signature header"),
        ("only other versions", lambda b, s: (b, "v2=" + s[3:]), 400,
         "no v1= signature in X-PagerDuty-Signature"),
        ("not hex", lambda b, s: (b, "v1=zzzz"), 400, "malformed v1 signature"),
    ],
)  # fmt: skip
def test_bad_signatures_are_refused(client: FlaskClient, redis_client, case, mangle, status, error):
    payload = event(event_id=f"refused-{case}")
    body = json.dumps(payload).encode()
    sent_body, signature = mangle(body, sign(body))
    queues = (INTAKE_QUEUE, urgent_queue(INTAKE_QUEUE))  # earlier tests may leave messages
    waiting = [redis_client.llen(queue) for queue in queues]
    answer = post(client, payload, signature=signature, body=sent_body)
    assert answer.status_code == status, case
    assert answer.get_json()["error"].startswith(error)
    assert answer.get_json()["field"] == "X-PagerDuty-Signature"
    # Nothing recorded, nothing run. Asked of this event and this app's queues, not of every
    # delivery in the database: a sender another test left running on a busy machine (a late
    # Alertmanager retry) may record one of its own meanwhile.
    assert redis_client.exists(dedup_key("pagerduty", payload["event"]["id"])) == 0
    assert [redis_client.llen(queue) for queue in queues] == waiting


def test_without_a_configured_secret_pagerduty_is_asked_to_retry(settings: Settings) -> None:
    answer = post(create_app(replace(settings, pagerduty_webhook_secrets=())).test_client(), EVENT)
    assert answer.status_code == 503
    assert "RESPONDER_PAGERDUTY_WEBHOOK_SECRETS" in answer.get_json()["error"]


# --- event types -------------------------------------------------------------------------


def test_a_retried_webhook_is_a_duplicate(client: FlaskClient) -> None:
    first = post(client, EVENT, webhook_id="wh-42").get_json()
    again = post(client, EVENT, webhook_id="wh-42").get_json()
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert delivery(client, again["delivery_id"])["pipeline"] == "not started: duplicate"


def test_without_x_webhook_id_the_event_id_dedups(client: FlaskClient) -> None:
    first = post(client, EVENT, webhook_id=None).get_json()
    again = post(client, EVENT, webhook_id=None).get_json()
    assert (first["duplicate"], again["duplicate"]) == (False, True)


def test_acknowledged_and_resolved_update_the_incident_record(
    client: FlaskClient, pd_settings: Settings
) -> None:
    post(client, EVENT, webhook_id="wh-t")
    acked = event("incident.acknowledged", status="acknowledged")
    acked["event"]["occurred_at"] = "2026-11-27T14:33:00Z"
    acked["event"]["agent"] = {"id": "PUSER1", "type": "user_reference", "summary": "Dana On-Call"}
    answer = post(client, acked, webhook_id="wh-a").get_json()
    assert answer["priority"] is None
    assert delivery(client, answer["delivery_id"])["pipeline"] == (
        "not started: incident record updated (incident.acknowledged)"
    )
    resolved = event("incident.resolved", status="resolved")
    resolved["event"]["occurred_at"] = "2026-11-27T15:10:00Z"
    post(client, resolved, webhook_id="wh-r")
    # An older event delivered late does not turn the status back.
    post(client, acked, webhook_id="wh-a-retry-late")
    record = Runtime(pd_settings).incidents.get("PGR0VU2")
    assert record["status"] == "resolved"
    assert record["acknowledged_by"] == "Dana On-Call"
    assert record["acknowledged_at"] == "2026-11-27T14:33:00+00:00"
    assert record["resolved_at"] == "2026-11-27T15:10:00+00:00"
    assert record["triggered_at"] == "2026-11-27T14:31:02.169000+00:00"


def annotated(note_id: str, content: str = "note text", trimmed: bool = False) -> dict[str, Any]:
    payload = copy.deepcopy(EVENT)
    payload["event"].update(
        event_type="incident.annotated", id=f"evt-note-{note_id}", occurred_at=now_iso()
    )
    payload["event"]["data"] = {
        "incident": {"id": "PGR0VU2", "type": "incident_reference", "summary": "x"},
        "id": note_id,
        "content": content,
        "trimmed": trimmed,
        "type": "incident_note",
    }
    return payload


def test_a_long_note_of_ours_trimmed_in_its_webhook_is_still_ours(
    client: FlaskClient, pd_settings: Settings, pagerduty
) -> None:
    rt = Runtime(pd_settings)
    incident = IncidentRef(pagerduty.add_incident("trim-key"), "trim-key")
    content = "[P1] SignalLatencyHigh evidence: 2 of 4 checks found problems\n" + "- line\n" * 60
    post_note_once(rt, incident, "run-trim", "evidence_note", content)
    [posted] = [note["content"] for note in pagerduty.notes_for(incident.id)]
    # Its webhook beat us storing the note's id, and PagerDuty cut the marker off the end.
    trimmed_copy = posted[:200]
    assert not notes.is_ours(trimmed_copy)
    ours = post(client, annotated("NOTE-ID-UNKNOWN", trimmed_copy, trimmed=True), webhook_id="t1")
    assert delivery(client, ours.get_json()["delivery_id"])["pipeline"] == "ignored: our own note"
    person = "Looked at the risk manager: restarting it. " * 10
    theirs = post(client, annotated("NOTE-PERSON", person[:200], trimmed=True), webhook_id="t2")
    assert delivery(client, theirs.get_json()["delivery_id"])["pipeline"] == NOTE_ADDED


def test_our_own_notes_coming_back_are_ignored(client: FlaskClient, pd_settings: Settings) -> None:
    Runtime(pd_settings).deliveries.remember_own_note("NOTEOURS")
    ours = post(client, annotated("NOTEOURS"), webhook_id="wh-n1").get_json()
    theirs = post(client, annotated("NOTEHUMAN"), webhook_id="wh-n2").get_json()
    assert delivery(client, ours["delivery_id"])["pipeline"] == "ignored: our own note"
    assert delivery(client, theirs["delivery_id"])["pipeline"] == "not started: a note was added"
    assert delivery(client, ours["delivery_id"])["incident_id"] == "PGR0VU2"
    # A person's note goes into the incident's history (its timeline); ours is there already.
    history = Runtime(pd_settings).incidents.history("PGR0VU2")
    assert [(e["what"], e["by"]) for e in history] == [("note added", EVENT_AGENT)]


def test_ping_and_unknown_types_are_recorded_without_work(client: FlaskClient) -> None:
    ping = {"event": {"id": "01E3XD1TAZJR6Y3KLZKC4V2O7K", "event_type": "pagey.ping"}}
    answer = post(client, ping, webhook_id="wh-p")
    assert answer.status_code == 202
    assert delivery(client, answer.get_json()["delivery_id"])["pipeline"] == "not started: ping"
    novel = event("incident.workflow.started")
    answer = post(client, novel, webhook_id="wh-u")
    assert answer.status_code == 202
    assert delivery(client, answer.get_json()["delivery_id"])["pipeline"] == (
        "ignored: unknown event type 'incident.workflow.started'"
    )


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        (b"{nope", "(body)", "body is not valid JSON"),
        (b'{"event": []}', "event", "expected an object"),
        (b'{"event": {"event_type": "incident.triggered"}}', "event.id", "expected a non-empty"),
    ],
)
def test_bad_bodies_with_good_signatures_get_400_naming_the_field(client, body, field, error):
    answer = post(client, None, body=body)
    assert answer.status_code == 400
    assert answer.get_json()["field"] == field
    assert answer.get_json()["error"].startswith(error)


# --- one pipeline per incident across both sources ---------------------------------------


def test_pagerduty_yields_to_the_alertmanager_delivery_for_the_same_incident(
    client: FlaskClient,
) -> None:
    group = sample_payload(groupKey='{}:{alertname="RiskManagerDown"}')
    am = client.post(
        "/webhooks/alertmanager", json=group, headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_json()
    key = hashlib.sha256(group["groupKey"].encode()).hexdigest()
    pd = post(client, event(incident_key=key)).get_json()
    assert delivery(client, pd["delivery_id"])["pipeline"] == (
        f"not started: incident already handled by alertmanager:{am['delivery_id']}"
    )


def test_alertmanager_joins_the_pagerduty_run_for_the_same_incident(
    client: FlaskClient,
) -> None:
    group = sample_payload(groupKey='{}:{alertname="RiskManagerDown", first="pd"}')
    key = hashlib.sha256(group["groupKey"].encode()).hexdigest()
    pd = post(client, event(incident_key=key)).get_json()
    am = client.post(
        "/webhooks/alertmanager", json=group, headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_json()
    assert am["priority"] >= pd["priority"]  # the same or less severe: no reason to run again
    # It starts nothing; its alerts are listed in the incident's next "more alerts" note.
    assert delivery(client, am["delivery_id"])["pipeline"] == (
        f"joined the run of pagerduty:{pd['delivery_id']}"
    )


def test_a_reopened_incident_runs_again_with_its_clocks_from_the_reopen(
    client: FlaskClient, pd_settings: Settings
) -> None:
    post(client, EVENT, webhook_id="wh-first")
    resolved = event("incident.resolved", status="resolved", event_id=2)
    post(client, resolved, webhook_id="wh-res")
    rt = Runtime(pd_settings)
    reopened = event("incident.reopened", status="triggered", event_id=3)
    reopened["event"]["occurred_at"] = "2026-11-25T16:00:00Z"
    answer = post(client, reopened, webhook_id="wh-re").get_json()
    assert delivery(client, answer["delivery_id"])["pipeline"] == "queued"
    # What the worker does first with that delivery: the run's deadlines count from the reopen.
    state = prepare.prepare_run(rt, answer["delivery_id"], 1, datetime.now(UTC))
    assert state is not None
    first_response.start_clock(rt, state)
    acknowledge = next(d for d in rt.clock.pending() if d.kind == "acknowledge")
    assert acknowledge.incident_id == "PGR0VU2"
    assert acknowledge.due.startswith("2026-11-25T16:")


def test_metrics_count_deliveries_rejections_and_priorities(client: FlaskClient) -> None:
    post(client, EVENT, webhook_id="wh-m1")
    post(client, EVENT, webhook_id="wh-m1")
    post(client, EVENT, signature="v1=" + "0" * 64)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'responder_deliveries_total{outcome="started",source="pagerduty"} 1.0' in text
    assert 'responder_duplicates_total{source="pagerduty"} 1.0' in text
    assert 'responder_rejections_total{reason="bad_signature",source="pagerduty"} 1.0' in text
    assert 'responder_classifications_total{priority="P0"} 1.0' in text
    assert 'responder_request_seconds_count{method="POST",route="/webhooks/pagerduty"} 3.0' in text


def test_a_p0_incidents_closing_task_rides_the_urgent_lane(
    client: FlaskClient, pd_settings: Settings, redis_client
) -> None:
    urgent = urgent_queue(pd_settings.queue)
    redis_client.delete(urgent)
    resolved = event("incident.resolved", status="resolved", event_id=7, title="RiskManagerDown")
    answer = post(client, resolved, webhook_id="wh-close-p0").get_json()
    [message] = [json.loads(m) for m in redis_client.lrange(urgent, 0, -1)]
    assert message["headers"]["task"] == CLOSE_INCIDENT
    assert answer["delivery_id"] in message["headers"]["argsrepr"]
    redis_client.delete(urgent)


def test_a_note_approves_only_a_proposal_of_its_own_incident(
    client: FlaskClient, pd_settings: Settings, redis_client
) -> None:
    from tasks.actions import approval

    rt = Runtime(pd_settings)
    redis_client.delete(f"{pd_settings.queue}-actions")
    # A proposal of another incident: a note on PGR0VU2 naming its id (a typo, a paste from
    # the wrong tab) must not approve it; that incident's own people decide it.
    other = approval.propose(rt, "restart-service", "risk-manager", "POTHER1", "alice")
    note = annotated("NOTE-CROSS", f"Approving.\n/approve {other.id}")
    note["event"]["agent"] = {"id": "PALLOWED", "type": "user_reference", "summary": "Al"}
    answer = post(client, note, webhook_id="wh-cross")
    assert answer.status_code == 202
    assert approval.proposals(rt).get(other.id).status == "proposed"  # type: ignore[union-attr]
    assert redis_client.llen(f"{pd_settings.queue}-actions") == 0  # nothing queued to act
    redis_client.delete(f"{pd_settings.queue}-actions")
