"""Replays refused and text that is text, against real Redis: PagerDuty events dedup on the
signed event id and are acted on only while fresh; a lone surrogate, NaN or a body nested too
deeply is a 400 naming the field, on every webhook, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from tasks.settings import Secret, Settings
from tests.integration.test_pagerduty_webhook import SECRET, annotated, delivery, event, post
from tests.integration.test_receiver import BEARER
from tests.support import sample_payload
from webhooks import create_app

RESUME_NOTE = "Market data is back.\n/run resume-trading"


@pytest.fixture
def pd_settings(intake_settings: Settings) -> Settings:
    """The receiver as shipped: a 10-minute window, 60 s of clock skew."""
    assert intake_settings.pagerduty_event_max_age_seconds == 600
    return replace(intake_settings, pagerduty_webhook_secrets=(Secret(SECRET),))


@pytest.fixture
def client(pd_settings: Settings) -> Iterator[FlaskClient]:
    yield create_app(pd_settings).test_client()


def at(seconds_from_now: float) -> str:
    when = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_note(note_id: str, occurred_at: str) -> dict[str, Any]:
    """Return the incident.annotated event of a person's note saying `/run resume-trading`."""
    note = annotated(note_id, RESUME_NOTE)
    note["event"]["occurred_at"] = occurred_at
    note["event"]["agent"] = {"id": "PALLOWED", "type": "user_reference", "summary": "Dana"}
    return note


def actions_queued(redis_client: redis.Redis, settings: Settings) -> int:
    return int(redis_client.llen(f"{settings.queue}-actions"))


# --- finding 3: the signed event id, not the header ------------------------------------------


def test_the_same_signed_body_with_a_new_webhook_id_is_a_duplicate(client: FlaskClient) -> None:
    body = json.dumps(event()).encode()
    first = post(client, None, body=body, webhook_id="wh-first").get_json()
    again = post(client, None, body=body, webhook_id="wh-made-up-by-the-replayer")
    assert again.status_code == 202
    assert (first["duplicate"], again.get_json()["duplicate"]) == (False, True)
    assert delivery(client, again.get_json()["delivery_id"])["pipeline"] == "not started: duplicate"


def test_a_captured_run_note_replayed_after_ten_and_a_half_minutes_is_refused_and_runs_nothing(
    client: FlaskClient, pd_settings: Settings, redis_client: redis.Redis
) -> None:
    redis_client.delete(f"{pd_settings.queue}-actions")
    # As found: the note event captured when it was sent, sent again 10.5 minutes later.
    # Never seen before here (its first delivery went elsewhere, or the id memory expired).
    answer = post(client, run_note("NOTE-CAPTURED", at(-630)), webhook_id="wh-replayed")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["field"] == "event.occurred_at"
    assert body["error"].startswith("stale event: occurred_at ")
    assert "is 630 s old, past the limit of 600 s; a replay is never acted on" in body["error"]
    stored = delivery(client, body["delivery_id"])
    assert stored["pipeline"] == f"refused: {body['error']}"
    assert actions_queued(redis_client, pd_settings) == 0  # no approval, no action task
    assert list(redis_client.scan_iter("responder:action:*")) == []
    # Sent once more: the usual idempotent duplicate, still nothing run.
    again = post(client, run_note("NOTE-CAPTURED", at(-640)), webhook_id="wh-again")
    assert (again.status_code, again.get_json()["duplicate"]) == (202, True)
    assert actions_queued(redis_client, pd_settings) == 0


def test_the_same_note_sent_fresh_is_taken_down_the_approval_path(
    client: FlaskClient, pd_settings: Settings, redis_client: redis.Redis
) -> None:
    redis_client.delete(f"{pd_settings.queue}-actions")
    answer = post(client, run_note("NOTE-FRESH", at(-5)), webhook_id="wh-fresh")
    assert answer.status_code == 202, answer.get_data(as_text=True)
    # What the stale copy lacks: a proposal approved by the note, its task queued.
    assert list(redis_client.scan_iter("responder:action:*")) != []
    assert actions_queued(redis_client, pd_settings) > 0


# Seconds from the moment the test runs, not from collection: a suite slower than five minutes
# made "+300 s" a time in the past by the time its case ran.
@pytest.mark.parametrize(
    ("ahead", "says"),
    [
        (300, "event from the future: occurred_at"),
        (3600, "ahead of this host's clock, past the 60 s allowed"),
        (None, "event.occurred_at is missing: the event's age cannot be checked"),
    ],
    ids=["5 minutes ahead", "an hour ahead", "no time"],
)
def test_events_from_the_future_or_without_a_time_are_refused(
    client: FlaskClient, pd_settings: Settings, redis_client: redis.Redis, ahead, says
) -> None:
    note = run_note("NOTE-ODD-TIME", at(ahead) if ahead is not None else "")
    if ahead is None:
        del note["event"]["occurred_at"]
    answer = post(client, note)
    assert answer.status_code == 200
    assert says in answer.get_json()["error"]
    assert list(redis_client.scan_iter("responder:action:*")) == []


def test_a_fresh_event_within_the_clock_skew_is_taken(client: FlaskClient) -> None:
    payload = event(event_id=77)
    payload["event"]["occurred_at"] = at(+30)  # PagerDuty's clock a little ahead of ours
    answer = post(client, payload)
    assert (answer.status_code, answer.get_json()["duplicate"]) == (202, False)


# --- finding 4: text is valid Unicode, on every field ----------------------------------------


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    payload = sample_payload()
    target: Any = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (["groupKey"], "groupKey"),
        (["alerts", 0, "fingerprint"], "alerts[0].fingerprint"),
        (["alerts", 0, "labels", "service"], "alerts[0].labels.service"),
        (["alerts", 0, "annotations", "summary"], "alerts[0].annotations.summary"),
        (["commonLabels", "service"], "commonLabels.service"),
        (["receiver"], "receiver"),
    ],
)
def test_a_lone_surrogate_in_an_alertmanager_field_is_a_400_naming_it(
    client: FlaskClient, redis_client: redis.Redis, path: list[Any], field: str
) -> None:
    body = json.dumps(_with(path, "risk\ud800manager"))  # json writes the escape \ud800
    answer = client.post(
        "/webhooks/alertmanager",
        data=body,
        headers={"Content-Type": "application/json", **BEARER},
    )
    assert answer.status_code == 400
    assert answer.get_json() == {
        "error": "not valid Unicode: holds a lone UTF-16 surrogate",
        "field": field,
    }
    assert redis_client.zcard("responder:deliveries") == 0  # never recorded, never run


def test_a_lone_surrogate_in_a_pagerduty_field_is_a_400_naming_it(client: FlaskClient) -> None:
    payload = event(event_id=5, title="[FIRING:1] RiskManagerDown \udfff")
    answer = post(client, payload)
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "event.data.title"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_refused_at_parse_naming_them(
    client: FlaskClient, redis_client: redis.Redis, constant: str
) -> None:
    body = json.dumps(sample_payload()).replace('"truncatedAlerts": 0', f'"x": {constant}')
    assert constant in body
    answer = client.post(
        "/webhooks/alertmanager", data=body, headers={"Content-Type": "application/json", **BEARER}
    )
    assert answer.status_code == 400
    assert answer.get_json()["error"] == (
        f"{constant} is not a JSON number (NaN and Infinity are refused)"
    )
    assert redis_client.zcard("responder:deliveries") == 0  # /deliveries never holds it


def test_a_deeply_nested_pagerduty_body_is_a_400(client: FlaskClient) -> None:
    body = b'{"event": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    answer = post(client, None, body=body)
    assert answer.status_code == 400
    assert "nests deeper than 32 levels" in answer.get_json()["error"]
