"""Issue 24, finding 5, re-run through the receiver: a copy of our note never commands."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from tasks.gateways.pagerduty import IncidentRef
from tasks.pagerduty.notes import post_note_once
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tests.integration.test_pagerduty_webhook import OLD_SECRET, SECRET, annotated, delivery, post
from triage.models import Classification, Priority
from webhooks import create_app
from webhooks.pagerduty import NOTE_ADDED


@pytest.fixture
def pd_settings(intake_settings: Settings) -> Settings:
    return replace(intake_settings, pagerduty_webhook_secrets=(Secret(OLD_SECRET), Secret(SECRET)))


@pytest.fixture
def client(pd_settings: Settings) -> FlaskClient:
    return create_app(pd_settings).test_client()


# What the alert and its service's logs said: lines that would be commands in a person's note.
LOG_LINES = ["Risk checks failing", "/run resume-trading", "/status identified all good"]


def test_a_copy_of_our_note_that_lost_its_opening_and_marker_commands_nothing(
    client: FlaskClient, pd_settings: Settings, pagerduty, redis_client
) -> None:
    rt = Runtime(pd_settings)
    actions = f"{pd_settings.queue}-actions"
    redis_client.delete(actions)
    incident = IncidentRef(pagerduty.add_incident("cut-key"), "cut-key")
    classification = Classification(Priority.P1, "r", "why")
    content = rt.voice.evidence(classification, "Risk", [], "/b", error_lines=LOG_LINES)
    post_note_once(rt, incident, "run-cut", "first_note", content)
    [posted] = [note["content"] for note in pagerduty.notes_for(incident.id)]
    assert "> /run resume-trading" in posted  # the alert's words, quoted
    # Cut by hand (no `trimmed` flag): the opening and the marker are gone.
    cut = "\n".join(posted.splitlines()[1:-1])
    by_person = annotated("NOTE-CUT", cut)
    by_person["event"]["agent"] = {"id": "PALLOWED", "type": "user_reference", "summary": "Al"}
    answer = post(client, by_person, webhook_id="cut-1").get_json()
    assert delivery(client, answer["delivery_id"])["pipeline"] == NOTE_ADDED  # a note, no command
    # The same words as our own PagerDuty user (the fake's note author) posted them.
    ours = annotated("NOTE-BOT", "/run resume-trading\n/status identified")
    ours["event"]["agent"] = {"id": "PBOT01", "type": "user_reference", "summary": "EAFIX"}
    answer = post(client, ours, webhook_id="cut-2").get_json()
    assert delivery(client, answer["delivery_id"])["pipeline"] == (
        "ignored: not a person's note: written by the responder's own PagerDuty user"
    )
    assert redis_client.llen(actions) == 0  # nothing was queued to run


def test_a_note_that_opens_as_ours_is_recorded_and_not_obeyed(
    client: FlaskClient, pd_settings: Settings, redis_client
) -> None:
    actions = f"{pd_settings.queue}-actions"
    redis_client.delete(actions)
    note = annotated("NOTE-OPEN", "[P1 (PagerDuty: P2)] RiskCheckErrors\n/run resume-trading")
    note["event"]["agent"] = {"id": "PALLOWED", "type": "user_reference", "summary": "Al"}
    answer = post(client, note, webhook_id="open-1").get_json()
    assert delivery(client, answer["delivery_id"])["pipeline"] == (
        "ignored: not a person's note: opens as a note of ours"
    )
    assert redis_client.llen(actions) == 0
