"""The SLA clock acting, with a controllable clock: escalation, status-update cadence, once."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tasks.gateways.email import EmailUnavailable
from tasks.gateways.pagerduty import IncidentRef, OutboxGateway
from tasks.notify import management
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.sla import actions
from tasks.store.sla_clock import deadlines_for
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_pagerduty_webhook import event
from triage.models import Priority, parse_pagerduty
from triage.policy import Management, ManagementChannel, builtin
from triage.sla import deadlines

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
def rt(settings: Settings, redis_client) -> Runtime:
    return Runtime(settings)


def start(rt: Runtime, incident: str, priority: Priority = Priority.P1) -> None:
    due = deadlines(priority, T0, builtin()).to_dict()
    rt.clock.register(deadlines_for(incident, "run-1", "SignalLatencyHigh", due))


def run_clock(rt: Runtime, until: datetime, step: timedelta = timedelta(minutes=5)) -> list[str]:
    """Tick the clock from T0 to `until`, acting on each claimed deadline; return the results."""
    results, now = [], T0
    while now <= until:
        for deadline in (claim.deadline for claim in rt.clock.claim_due(now)):
            results.append(f"{deadline.kind}: {actions.act(rt, deadline, now)}")
        now += step
    return results


def test_not_acknowledged_in_time_escalates_and_says_which_sla(
    rt, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-esc")
    start(rt, incident)
    results = [r for r in run_clock(rt, T0 + timedelta(minutes=20)) if r.startswith("ack")]
    assert results[0] == (
        "acknowledge: [P1 (PagerDuty: P2)] "
        "SLA missed: not acknowledged within 15m (due 15:15 UTC, 0m late)."
        " Escalated to level 2."
    )
    assert pagerduty.incidents[incident]["escalation_level"] == 2
    [note] = pagerduty.notes_for(incident)
    assert note["content"].startswith(
        "[P1 (PagerDuty: P2)] SLA missed: not acknowledged within 15m"
    )


def test_acknowledged_in_time_means_no_escalation(rt, pagerduty: FakePagerDuty) -> None:
    incident = pagerduty.add_incident("k-ack")
    start(rt, incident)
    acked = event("incident.acknowledged", id=incident, status="acknowledged")
    acked["event"]["occurred_at"] = "2026-11-25T15:10:00Z"
    rt.incidents.apply(parse_pagerduty(acked))
    results = [r for r in run_clock(rt, T0 + timedelta(minutes=16)) if r.startswith("ack")]
    assert results == ["acknowledge: acknowledged in time"]
    assert "escalation_level" not in pagerduty.incidents[incident]
    assert [c for c in pagerduty.calls if c.method == "PUT"] == []


def test_status_updates_follow_the_cadence_over_two_hours(rt, pagerduty: FakePagerDuty) -> None:
    incident = pagerduty.add_incident("k-upd")
    start(rt, incident)
    rt.clock.cancel(incident, ["acknowledge", "respond", "notify_management"])
    run_clock(rt, T0 + timedelta(hours=2))
    updates = pagerduty.status_updates[incident]
    assert len(updates) == 5  # at once, then at 30, 60, 90 and 120 minutes (P1: every 30m)
    first = updates[0]["message"].splitlines()
    assert first[0] == f"INCIDENT UPDATE - {incident} [P1 (PagerDuty: P2)]"
    assert [line.split(":")[0] for line in first[1:]] == [
        "Status", "Impact", "Actions", "ETA", "Next Update",
    ]  # fmt: skip
    assert first[-1] == "Next Update: 2026-11-25 15:30 UTC"


def test_a_redelivered_action_escalates_and_notes_once(rt, pagerduty: FakePagerDuty) -> None:
    incident = pagerduty.add_incident("k-once")
    start(rt, incident)
    [deadline] = [
        c.deadline
        for c in rt.clock.claim_due(T0 + timedelta(minutes=16))
        if c.deadline.kind == "acknowledge"
    ]
    actions.act(rt, deadline, T0 + timedelta(minutes=16))
    actions.act(rt, deadline, T0 + timedelta(minutes=17))  # the task ran again
    assert len([c for c in pagerduty.calls if c.method == "PUT"]) == 1
    assert len(pagerduty.notes_for(incident)) == 1


def test_a_resolved_incident_gets_nothing_but_its_management_notification(
    rt, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-res")
    start(rt, incident)
    rt.incidents.apply(parse_pagerduty(event("incident.resolved", id=incident, status="resolved")))
    assert set(run_clock(rt, T0 + timedelta(hours=1))) == {
        "acknowledge: resolved: nothing to do",
        "respond: resolved: nothing to do",
        "next_update: resolved: nothing to do",
        "notify_management: [P1 (PagerDuty: P2)] "
        "Management notification (30m): resolved before it fell due. "
        "Resolution summary for engineering management:",
    }
    assert [c.path for c in pagerduty.calls] == [f"/incidents/{incident}/notes"]


MANAGEMENT = Management(
    requester_id="PREQ001",
    targets=(("PEP0001", "escalation_policy_reference"), ("PUSR001", "user_reference")),
)


@pytest.fixture
def rt_with_management(rt: Runtime) -> Runtime:
    policy = rt.policy
    rt.policy = replace(policy, pagerduty=replace(policy.pagerduty, management=MANAGEMENT))
    return rt


def management_results(rt: Runtime, until: datetime) -> list[str]:
    return [r for r in run_clock(rt, until, timedelta(minutes=1)) if r.startswith("notify_")]


def test_p0_calls_management_in_at_once(rt_with_management, pagerduty: FakePagerDuty) -> None:
    incident = pagerduty.add_incident("k-p0-mgmt")
    start(rt_with_management, incident, Priority.P0)
    assert management_results(rt_with_management, T0) == [
        "notify_management: [P0 (PagerDuty: P1)] "
        "Management notification due (immediately): responders "
        "requested from PEP0001 (escalation policy), PUSR001 (user)."
    ]
    [request] = pagerduty.responder_requests[incident]
    assert request["requester"]["id"] == "PREQ001"
    assert request["message"] == "EAFIX P0 incident needs management: SignalLatencyHigh"
    assert request["responder_request_targets"] == [
        {"responder_request_target": {"id": "PEP0001", "type": "escalation_policy_reference"}},
        {"responder_request_target": {"id": "PUSR001", "type": "user_reference"}},
    ]
    [note] = pagerduty.notes_for(incident)
    assert "responders requested from PEP0001" in note["content"]


def test_p1_calls_management_in_after_30_minutes_if_still_open(
    rt_with_management, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-p1-mgmt")
    start(rt_with_management, incident, Priority.P1)
    assert management_results(rt_with_management, T0 + timedelta(minutes=29)) == []
    assert incident not in pagerduty.responder_requests
    assert len(management_results(rt_with_management, T0 + timedelta(minutes=30))) == 1
    assert len(pagerduty.responder_requests[incident]) == 1


def test_p1_resolved_within_30_minutes_calls_no_one_and_tells_management(
    rt_with_management, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-p1-done")
    start(rt_with_management, incident, Priority.P1)
    resolved = event("incident.resolved", id=incident, status="resolved")
    rt_with_management.incidents.apply(parse_pagerduty(resolved))
    [result] = management_results(rt_with_management, T0 + timedelta(minutes=45))
    assert "resolved before it fell due" in result
    assert pagerduty.responder_requests == {}


def test_a_refused_responder_request_asks_for_it_by_hand(
    rt_with_management, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-p0-402")
    start(rt_with_management, incident, Priority.P0)
    pagerduty.fail_next(402, path_suffix="/responder_requests")
    [result] = management_results(rt_with_management, T0)
    assert "the responder request failed" in result
    assert "call management in by hand" in result
    [note] = pagerduty.notes_for(incident)
    assert "402" in note["content"]


def test_without_management_targets_the_note_says_management_was_emailed(
    rt, pagerduty: FakePagerDuty
) -> None:
    """The default policy: no `pagerduty.management`, management's e-mail address. The e-mail
    went before the note: the note says so, instead of asking a person to tell management."""
    incident = pagerduty.add_incident("k-p0-note")
    start(rt, incident, Priority.P0)
    assert management_results(rt, T0) == [
        "notify_management: [P0 (PagerDuty: P1)] "
        "Management notification due (immediately): engineering management was e-mailed "
        "(engineering-management@eafix.example, cto@eafix.example); no one is called in."
    ]
    assert pagerduty.responder_requests == {}


def test_without_management_targets_or_addresses_the_note_asks_a_person(
    rt, pagerduty: FakePagerDuty
) -> None:
    # Nobody to e-mail: neither management nor the CTO, whom a P0 reaches too.
    communication = replace(rt.policy.communication, management=ManagementChannel(), cto=None)
    rt.policy = replace(rt.policy, communication=communication)
    incident = pagerduty.add_incident("k-p0-note")
    start(rt, incident, Priority.P0)
    assert management_results(rt, T0) == [
        "notify_management: [P0 (PagerDuty: P1)] "
        "Management notification due (immediately): tell engineering "
        "management about this incident now."
    ]


def test_without_management_targets_a_failed_email_leaves_the_note_asking_a_person(
    rt, pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(rt: Runtime, notice: object, now: datetime) -> str:
        raise EmailUnavailable("SMTP answered 451", 451)

    monkeypatch.setattr(management, "CHANNELS", (refused,))
    incident = pagerduty.add_incident("k-p0-note")
    start(rt, incident, Priority.P0)
    [deadline] = [
        c.deadline for c in rt.clock.claim_due(T0) if c.deadline.kind == "notify_management"
    ]
    with pytest.raises(EmailUnavailable):  # raised after the note, to retry the e-mail
        actions.act(rt, deadline, T0)
    [note] = [n for n in pagerduty.notes_for(incident) if "anagement" in n["content"]]
    assert "tell engineering management about this incident now." in note["content"]


def test_the_outbox_writes_the_responder_request_pagerduty_received(
    rt_with_management, pagerduty: FakePagerDuty, tmp_path
) -> None:
    incident = pagerduty.add_incident("k-p0-outbox")
    start(rt_with_management, incident, Priority.P0)
    management_results(rt_with_management, T0)
    [sent] = [c.body for c in pagerduty.calls if c.path.endswith("/responder_requests")]
    outbox = OutboxGateway(tmp_path, "responder@eafix.example")
    ref = IncidentRef(incident, "k-p0-outbox")
    outbox.request_responders(ref, "PREQ001", MANAGEMENT.targets, sent["message"])
    [written] = [json.loads(p.read_text()) for p in tmp_path.glob("*-responder-request-*.json")]
    assert written["path"] == f"/incidents/{incident}/responder_requests"
    assert written["json"] == sent


def test_a_late_status_update_keeps_the_cadence_of_its_due_time(
    rt, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("k-late-upd")
    start(rt, incident)
    [update] = [c.deadline for c in rt.clock.claim_due(T0 + timedelta(minutes=37))
                if c.deadline.kind == "next_update"]  # fmt: skip
    actions.act(rt, update, T0 + timedelta(minutes=37))  # due at 15:00, acted on at 15:37
    [following] = [d for d in rt.clock.pending() if d.kind == "next_update"]
    assert following.due == (T0 + timedelta(hours=1)).isoformat()  # 16:00: not 16:07 or 15:30
    # Hours late (everything was down): the next one is the next on the cadence, not a backlog.
    actions.act(rt, following, T0 + timedelta(hours=3, minutes=10))
    [after] = [d for d in rt.clock.pending() if d.kind == "next_update"]
    assert after.due == (T0 + timedelta(hours=3, minutes=30)).isoformat()
    assert len(pagerduty.status_updates[incident]) == 2


def test_only_one_task_acts_on_a_deadline_at_a_time(rt) -> None:
    due = deadlines(Priority.P1, T0, builtin()).to_dict()
    deadline = deadlines_for("PLOCK", "run-1", "t", due)[0]
    with actions.acting_alone(rt, deadline, "task-1", 60) as first:
        with actions.acting_alone(rt, deadline, "task-2", 60) as second:
            assert (first, second) == (True, False)
    with actions.acting_alone(rt, deadline, "task-2", 60) as again:
        assert again  # released when the first finished


def test_a_task_redelivered_after_its_worker_died_takes_its_lock_again(rt) -> None:
    due = deadlines(Priority.P1, T0, builtin()).to_dict()
    deadline = deadlines_for("PLOCK2", "run-1", "t", due)[0]
    held = actions.acting_alone(rt, deadline, "task-1", 60)
    assert held.__enter__()  # the worker died holding it: never released
    with actions.acting_alone(rt, deadline, "task-1", 60) as redelivered:
        assert redelivered
    with actions.acting_alone(rt, deadline, "task-2", 60) as other:
        assert other  # the redelivered copy finished and released it


def test_an_action_that_failed_for_good_asks_for_it_by_hand(rt, pagerduty: FakePagerDuty) -> None:
    incident = pagerduty.add_incident("k-gave-up")
    start(rt, incident, Priority.P0)
    [acknowledge] = [d for d in rt.clock.pending() if d.kind == "acknowledge"]
    actions.gave_up(rt, acknowledge, "HTTP 503 server error; gave up after 6 attempts")
    [note] = pagerduty.notes_for(incident)
    assert note["content"].startswith(
        "[P0 (PagerDuty: P1)] "
        "SLA acknowledge action failed: HTTP 503 server error; gave up after 6 attempts. "
        "Please escalate it by hand."
    )
