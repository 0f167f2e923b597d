"""Deliveries that join an incident's run: one "more alerts" note per interval, posted once."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from tasks.run import joined_alerts
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.store.deliveries import claim_key
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration import test_pagerduty_webhook as pd
from tests.integration.test_end_to_end import incident_key
from tests.support import TOKEN, sample_payload
from webhooks import create_app


@pytest.fixture
def pd_client(intake_settings: Settings) -> FlaskClient:
    secrets = (Secret(pd.SECRET),)
    return create_app(replace(intake_settings, pagerduty_webhook_secrets=secrets)).test_client()


GROUP = '{}:{alertname="SignalLatencyHigh", storm="yes"}'


def group_update(number: int) -> dict[str, Any]:
    """Return the group with one more firing alert than before (its own fingerprint)."""
    payload = sample_payload(groupKey=GROUP)
    alert = copy.deepcopy(payload["alerts"][0])
    alert["fingerprint"] = f"{number:016x}"
    alert["labels"]["instance"] = f"host-{number}"
    payload["alerts"] = [*payload["alerts"], alert]
    return payload


def post(client: FlaskClient, payload: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(
        "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


def test_joined_deliveries_get_one_note_listing_their_new_alerts(
    intake_settings: Settings, pagerduty: FakePagerDuty, redis_client
) -> None:
    settings = replace(intake_settings)
    client = create_app(settings).test_client()
    rt = Runtime(settings)
    incident = pagerduty.add_incident(incident_key(sample_payload(groupKey=GROUP)))
    first = post(client, sample_payload(groupKey=GROUP))
    joined = [post(client, group_update(n)) for n in (1, 2, 3)]
    post(client, group_update(3))  # the same alert again: a duplicate, joins nothing
    assert rt.deliveries.get(first["delivery_id"])["pipeline"] == "queued"
    for answer in joined:
        pipeline = rt.deliveries.get(answer["delivery_id"])["pipeline"]
        assert pipeline == f"joined the run of alertmanager:{first['delivery_id']}"

    assert joined_alerts.take_due(rt, time.time(), 120) == []  # not due before the interval
    [batch] = joined_alerts.take_due(rt, time.time() + 301, 120)
    note_id = joined_alerts.post_joined_note(rt, batch, datetime.now(UTC))
    assert joined_alerts.post_joined_note(rt, batch, datetime.now(UTC)) == "already posted"

    [note] = pagerduty.notes_for(incident)
    lines = note["content"].splitlines()
    assert lines[0] == "[P1 (PagerDuty: P2)] 3 more alerts joined this incident: SignalLatencyHigh"
    assert sum("instance=host-" in line for line in lines) == 3
    assert note["id"] == note_id
    # Only the lookup of the incident by key and the note: nothing per delivery.
    assert [(c.method, c.path.split("/")[1]) for c in pagerduty.calls] == [
        ("GET", "incidents"),
        ("POST", "incidents"),
    ]
    assert rt.deliveries.get(joined[0]["delivery_id"])["joined_note"] == note_id
    assert joined_alerts.take_due(rt, time.time() + 1000, 120) == []  # done: not sent again


def test_a_batch_whose_note_never_finished_is_sent_again_after_its_lease(
    intake_settings: Settings, redis_client
) -> None:
    client = create_app(intake_settings).test_client()
    rt = Runtime(intake_settings)
    post(client, sample_payload(groupKey=GROUP))
    post(client, group_update(1))
    [batch] = joined_alerts.take_due(rt, time.time() + 301, 120)
    # The task that would post it died: within the lease it is left alone, then sent again.
    assert joined_alerts.take_due(rt, time.time() + 302, 120) == []
    later = time.time() + 301 + 121
    assert joined_alerts.take_due(rt, later, 120) == [batch]
    # A second tick at the same moment (two beats around a lease takeover) does not take it too.
    assert joined_alerts.take_due(rt, later, 120) == []


def test_pagerduty_webhooks_teach_the_incident_id_and_its_resolution_forgets_it(
    pd_client: FlaskClient, intake_settings: Settings
) -> None:
    rt = Runtime(intake_settings)
    pd.post(pd_client, pd.event(incident_key="k-cached"), webhook_id="wh-cache-1")
    assert rt.incidents.id_for("k-cached") == "PGR0VU2"  # no GET /incidents for this key
    assert rt.redis.get(claim_key("k-cached")) is not None  # its run holds the key
    late = pd.event("incident.resolved", status="resolved", event_id=2, incident_key="k-cached")
    late["event"]["occurred_at"] = "2026-01-01T00:00:00Z"  # before this run started
    pd.post(pd_client, late, webhook_id="wh-cache-2")
    assert rt.redis.get(claim_key("k-cached")) is not None  # a late event frees no newer run
    resolved = pd.event("incident.resolved", status="resolved", event_id=3, incident_key="k-cached")
    resolved["event"]["occurred_at"] = datetime.now(UTC).isoformat()
    pd.post(pd_client, resolved, webhook_id="wh-cache-3")
    assert rt.incidents.id_for("k-cached") is None  # the key may open a new incident later
    assert rt.redis.get(claim_key("k-cached")) is None  # whose alerts must not join this run
