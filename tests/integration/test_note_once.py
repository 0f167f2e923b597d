"""A note is posted once even when two copies of its task run at the same time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tasks.gateways.pagerduty import IncidentRef, PagerDutyUnavailable
from tasks.pagerduty.notes import post_note_once
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.store.deliveries import current_attempt
from tests.fakes.pagerduty import FakePagerDuty


@pytest.fixture
def rt(settings: Settings, redis_client) -> Runtime:
    return Runtime(settings)


@pytest.fixture
def as_copy() -> Iterator[Callable[[str], None]]:
    tokens = []

    def become(task_id: str) -> None:
        tokens.append(current_attempt.set(task_id))

    yield become
    for token in reversed(tokens):
        current_attempt.reset(token)


def test_a_second_copy_waits_while_the_first_ones_attempt_may_be_in_flight(
    rt: Runtime, pagerduty: FakePagerDuty, as_copy
) -> None:
    incident = IncidentRef(pagerduty.add_incident("k-once"), "k-once")
    as_copy("task-a")
    assert rt.deliveries.claim_attempt("r1", "first_note", None, "task-a")  # A is posting...
    as_copy("task-b")
    with pytest.raises(PagerDutyUnavailable) as waited:
        post_note_once(rt, incident, "r1", "first_note", "[P1] hello")
    assert waited.value.held_back  # ...so B waits, as for the budget, and posts nothing
    assert pagerduty.calls == []


def test_an_attempt_pending_long_ago_is_looked_up_before_posting(
    rt: Runtime, pagerduty: FakePagerDuty, redis_client, as_copy
) -> None:
    incident = IncidentRef(pagerduty.add_incident("k-old"), "k-old")
    redis_client.set("responder:effect:r2:first_note", "pending:task-a:1000.0")  # A died then
    as_copy("task-b")
    note_id = post_note_once(rt, incident, "r2", "first_note", "[P1] hello")
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in pagerduty.calls] == [
        ("GET", "notes"),
        ("POST", "notes"),
    ]
    assert note_id and post_note_once(rt, incident, "r2", "first_note", "x") is None
    assert len(pagerduty.notes_for(incident.id)) == 1


def test_the_lookup_by_key_takes_the_newest_open_incident(
    rt: Runtime, pagerduty: FakePagerDuty
) -> None:
    old = pagerduty.add_incident("k-again")
    pagerduty.incidents[old]["status"] = "resolved"
    new = pagerduty.add_incident("k-again")  # the group fired again: a new incident
    assert rt.pagerduty.find_incident("k-again") == IncidentRef(new, "k-again")
    pagerduty.incidents[new]["status"] = "resolved"
    assert rt.pagerduty.find_incident("k-again") is None  # never a resolved one for a new run
    assert rt.pagerduty.find_incident("k-again", open_only=False) == IncidentRef(new, "k-again")
