"""The response to one delivery, as a plain function: what the `respond` task does, and the
controllable clock of the tests too (tests/support/clock.py), so the two cannot drift apart.

Place the run in its incident (or join an open one), find or trigger the PagerDuty incident,
post the first note, call in the security team, queue the evidence, start the SLA clock and
follow the first note up. What the carrier of the response provides (the time, a sender of
tasks, its retries) comes in as a `Carrier`: a Celery task's in a worker, a test's at a chosen
moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tasks.gateways.pagerduty import IncidentRef, PagerDutyUnavailable
from tasks.lanes import Lane, current_lane, queue_for, writing_first_response
from tasks.names import GATHER
from tasks.run import correlating, first_response, prepare, watching
from tasks.run.state import RunState, record_failure
from tasks.runtime import Runtime, SendTask
from tasks.sla import actions

NOTHING = "nothing to respond to"


class RetryOrGiveUp(Protocol):
    """Retries a failed PagerDuty write, waits for budget, or gives up (calling `give_up`)."""

    def __call__(
        self, exc: PagerDutyUnavailable, give_up: Callable[[str], None], **about: str
    ) -> None:
        """Raise the carrier's retry, or call `give_up(why)`, dead-letter the work and return."""
        ...


@dataclass(frozen=True)
class Carrier:
    """What a response needs from what carries it: a Celery task in a worker, a test's clock."""

    now: Callable[[], datetime]
    send: SendTask
    owner: str  # the carrying attempt: it owns the SLA actions' lock while it acts early
    lock_seconds: int  # how long that lock holds: longer than the attempt may run
    retry: Callable[[float], BaseException]  # raises (or returns) a retry after a countdown
    retry_lookup: Callable[[], None]  # raises a retry while lookups of the incident remain
    retry_or_give_up: RetryOrGiveUp


def respond(carrier: Carrier, rt: Runtime, delivery_id: str, run: int) -> str:
    """Start the response to a delivery: find the incident, post the first note, fan out.

    Return the run's id, or what became of it instead (nothing to do, joined, gave up).
    """
    state = prepare.prepare_run(rt, delivery_id, run, carrier.now())
    if state is None:
        return NOTHING
    if correlating.place(rt, state, carrier.now()).get("acts"):
        joined = respond_joined(carrier, rt, state)
        if joined is not None:
            return joined
    watching.judge(rt, state, carrier.now())  # a new incident: the same group back soon is raised
    incident = None
    routine = current_lane.get() is Lane.ROUTINE
    if routine:  # until its first note is out, other incidents' follow-ups wait for it
        rt.budget.first_response_begins(state.run_id)
    try:
        with writing_first_response():
            incident = first_response.resolve_incident(rt, state)
        if incident is None and first_response.trigger_incident(rt, state, carrier.now()):
            raise carrier.retry(min(rt.settings.incident_lookup_delay_seconds, 1.0))
        if incident is None:
            carrier.retry_lookup()
        with writing_first_response():
            first_response.post_first_note(rt, state, incident, carrier.now())
            first_response.call_in_security(rt, state, incident)  # once per incident
    except PagerDutyUnavailable as exc:
        # The first note is posted before the security team is called in: name what failed.
        noted = rt.deliveries.effect_done(state.run_id, "first_note")
        step = "security_request" if noted else "first_note"
        carrier.retry_or_give_up(
            exc,
            lambda why: record_failure(rt, state, step, why),
            delivery_id=state.delivery_id,
            incident_id=state.incident_id or "",
            step=step.replace("_", " "),
        )
    if routine:  # posted or given up for good (a retry that waits raised before this)
        rt.budget.first_response_ends(state.run_id)
    # The evidence starts before the clock's follow-ups: they must not delay it.
    fan_out(rt, state, carrier.send)
    first_response.start_clock(rt, state)
    if incident is not None:
        follow_first_note(rt, state, incident, carrier.owner, carrier.lock_seconds, carrier.now())
    return state.run_id


def fan_out(rt: Runtime, state: RunState, send: SendTask) -> None:
    """Queue the gathering of the run's evidence on the run's lane, once per run."""
    if not rt.deliveries.effect_done(state.run_id, "fanout"):
        queue = queue_for(rt.settings.queue, state.classification.priority)  # the run's lane
        send(GATHER, [state.run_id], queue)
        rt.deliveries.mark_effect(state.run_id, "fanout")


def respond_joined(carrier: Carrier, rt: Runtime, state: RunState) -> str | None:
    """Answer a run whose group joined an open incident: no first note, no clock of its own.

    Return None when it must be answered on its own after all (the incident it joins is
    resolved, or has no PagerDuty incident after every lookup); the caller then does.
    """
    lead = correlating.lead_run(rt, state.correlation)
    why_alone = correlating.why_alone(rt, lead)
    if why_alone == correlating.NOT_YET:
        carrier.retry_lookup()  # retries while lookups remain
        why_alone = "the incident it joins had no PagerDuty incident after every lookup"
    if (
        not why_alone
        and rt.policy.pagerduty.incident != "trigger"
        and first_response.resolve_incident(rt, state) is None
    ):
        carrier.retry_lookup()  # Alertmanager's incident for the group: to merge it (or not)
    if why_alone or lead is None:
        correlating.answer_alone(rt, state, why_alone)
        return None
    try:
        needs_evidence = correlating.join(rt, state, lead, carrier.now())
    except PagerDutyUnavailable as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            # PagerDuty refused the merge for good (the target resolved meanwhile): answer
            # the group on its own rather than leave it without a response.
            correlating.answer_alone(rt, state, f"PagerDuty refused to merge: {exc}")
            return None
        carrier.retry_or_give_up(
            exc,
            lambda why: record_failure(rt, state, "join", why),
            delivery_id=state.delivery_id,
            incident_id=state.incident_id or "",
            step="join",
        )
        return "gave up"
    if needs_evidence:
        fan_out(rt, state, carrier.send)
    return f"joined {state.incident_id}"


def follow_first_note(
    rt: Runtime, state: RunState, incident: IncidentRef, owner: str, seconds: int, now: datetime
) -> None:
    """After the first note: the urgency outside business hours, the first status update, the
    priority. A failure is recorded and the rest go on: the notes matter more, and the first two
    are the clock's deadlines too, which beat takes up when this fails.

    None of them draws on the first responses' share of the budget: in a storm, other
    incidents' first notes come before this one's status update (the runbook gives it 15 min).
    """
    steps: dict[str, Callable[[], object]] = {
        "urgency": lambda: actions.act_early(rt, state, "lower_urgency", owner, seconds, now),
        "status_update": lambda: actions.act_early(rt, state, "next_update", owner, seconds, now),
        "priority": lambda: first_response.set_incident_priority(rt, state, incident),
    }
    for step, run in steps.items():
        try:
            run()
        except PagerDutyUnavailable as exc:
            record_failure(rt, state, step, str(exc))
