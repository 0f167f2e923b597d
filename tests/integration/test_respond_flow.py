"""The response as one plain function (tasks.respond_flow), carried by the controllable clock:
the path the `respond` task takes, with its fan-out, its lookups and its failures handed to
whatever carries it (a Celery task in a worker), against real Redis and the fake PagerDuty."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tasks import respond_flow
from tasks.gateways.pagerduty import PagerDutyUnavailable
from tasks.lanes import queue_for
from tasks.names import GATHER
from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, sample_payload
from tests.support.clock import NEW_YORK, record_trigger, respond
from webhooks import create_app

TUESDAY_10AM = datetime(2026, 12, 1, 10, 0, tzinfo=NEW_YORK)
TITLE = "[FIRING:1] ServiceDown (warning outage gui-gateway)"


@pytest.fixture
def rt(settings: Settings, redis_client: Any, tmp_path: Path) -> Runtime:
    return Runtime(replace(settings, bundle_dir=tmp_path))


class Retried(Exception):
    """What the test's carrier raises where a Celery task would retry."""


def carrier(asked: list[str]) -> respond_flow.Carrier:
    """Return a carrier at Tuesday 10:00 that records what the response asked of it."""

    def retry(countdown: float) -> BaseException:
        asked.append(f"retry in {countdown} s")
        raise Retried

    def retry_lookup() -> None:
        asked.append("lookup again")
        raise Retried

    def retry_or_give_up(exc: PagerDutyUnavailable, give_up: Any, **about: str) -> None:
        asked.append(f"retry or give up: {about['step']} (HTTP {exc.status})")
        raise Retried

    return respond_flow.Carrier(
        now=lambda: TUESDAY_10AM,
        send=lambda name, args, queue: asked.append(f"send {name}"),
        owner="test",
        lock_seconds=60,
        retry=retry,
        retry_lookup=retry_lookup,
        retry_or_give_up=retry_or_give_up,
    )


def test_the_clock_responds_as_the_task_does_and_queues_the_evidence_once_on_the_runs_lane(
    rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-flow", TITLE)
    delivery_id = record_trigger(rt, incident, TITLE, "P2", TUESDAY_10AM)
    queued: list[tuple[str, list[Any], str]] = []

    state = respond(rt, delivery_id, TUESDAY_10AM, queued)
    again = respond(rt, delivery_id, TUESDAY_10AM, queued)  # a redelivered task

    assert queued == [(GATHER, [state.run_id], queue_for(rt.settings.queue, "P2"))]
    assert again.run_id == state.run_id
    assert [n["content"].splitlines()[0] for n in pagerduty.notes_for(incident)] == [
        f"[P2 (PagerDuty: P3)] {TITLE}"
    ]
    assert [d.kind for d in rt.clock.pending() if d.incident_id == incident]  # the clock runs


def test_an_alert_whose_incident_pagerduty_has_not_opened_yet_asks_its_carrier_to_look_again(
    intake_settings: Settings, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    # The intake queue: the session worker must not run this delivery beside the test.
    ours = replace(intake_settings, bundle_dir=tmp_path)
    accepted = (
        create_app(ours)
        .test_client()
        .post(
            "/webhooks/alertmanager",
            json=sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", flow="lookup"}'),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        .get_json()
    )
    asked: list[str] = []

    with pytest.raises(Retried):
        respond_flow.respond(carrier(asked), Runtime(ours), accepted["delivery_id"], 1)

    assert asked == ["lookup again"]  # nothing queued, nothing posted before the incident is known
    assert [c for c in pagerduty.calls if c.method == "POST"] == []


def test_a_failed_first_note_goes_to_the_carriers_retry_named_as_the_first_note(
    rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-flow-500", TITLE)
    delivery_id = record_trigger(rt, incident, TITLE, "P2", TUESDAY_10AM)
    pagerduty.fail_next(500, count=10, method="POST", path_suffix="/notes")
    asked: list[str] = []

    with pytest.raises(Retried):
        respond_flow.respond(carrier(asked), rt, delivery_id, 1)

    assert asked == ["retry or give up: first note (HTTP 500)"]
    assert pagerduty.notes_for(incident) == []
