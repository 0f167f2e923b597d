"""The responder's Celery tasks, and nothing else: each takes ids, declares its retries and
calls a plain function that does the work (`tasks.respond_flow`, `tasks.run`, `tasks.sla`,
`tasks.actions`, `tasks.notify`).

Around them: the worker's signals (`tasks.worker_signals`, connected by importing it here), the
retry and dead-letter engine (`tasks.dead_letter`), the requeueing of stalled deliveries
(`tasks.requeue`) and the runtime of the process (`tasks.celery_app.runtime_of`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from celery import Celery, shared_task
from celery.exceptions import SoftTimeLimitExceeded

import tasks.worker_signals  # noqa: F401 - connects the worker's signals on import
from tasks import requeue, respond_flow
from tasks.actions import act as actions_act
from tasks.celery_app import runtime_of, sender_of
from tasks.dead_letter import (
    retry_email_or_give_up,
    retry_lookup,
    retry_or_give_up,
    retry_or_log,
)
from tasks.evidence import bundle
from tasks.gateways.email import EmailUnavailable
from tasks.gateways.pagerduty import PagerDutyUnavailable
from tasks.gateways.slack import SlackUnavailable
from tasks.lanes import actions_queue, deadline_queue, queue_for
from tasks.names import (
    ACT,
    ACTION_ALREADY,
    ACTION_REFUSED,
    ACTION_WAITS,
    ANSWER_NOTE,
    APPROVAL_LINKS,
    APPROVE_IF_ASSIGNED,
    CLOSE_INCIDENT,
    GATHER,
    JOINED_NOTE,
    NOTE_RESOLVED,
    RESPOND,
    SLA_ACTION,
    SLACK_MESSAGE,
)
from tasks.notify import approval_links as approval_mail
from tasks.notify import desk, slack_send
from tasks.pagerduty.incidents import IncidentNotFound
from tasks.run import evidence_note, joined_alerts, resolution
from tasks.run.state import load_run, record_failure
from tasks.runtime import Runtime
from tasks.sla import actions, audit, closing, note_answers, watchdog
from tasks.store import worker_marks
from tasks.store.sla_clock import Deadline

log = logging.getLogger(__name__)

# A batch sent and not done is sent again after the policy's give-up time and this much more.
# Only a tick that died between taking and sending leaves one behind (a dead worker's task
# comes back by itself), while a live task may wait for budget or retry that long.
JOINED_LEASE_MARGIN_SECONDS = 3600.0
SLA_LOCK_RETRY_SECONDS = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


def task_carrier(task: Any, rt: Runtime) -> respond_flow.Carrier:
    """Return what a response run by the bound task `task` is carried by: its retries, its app."""
    return respond_flow.Carrier(
        now=_now,
        send=sender_of(task.app),
        owner=task.request.id or "-",
        lock_seconds=int(task.app.conf.task_time_limit) + 60,  # the SLA actions' lock
        retry=lambda countdown: task.retry(countdown=countdown),
        retry_lookup=lambda: retry_lookup(task, rt),
        retry_or_give_up=lambda exc, give_up, **about: retry_or_give_up(
            task, rt, exc, give_up, **about
        ),
    )


@shared_task(bind=True, name=RESPOND, max_retries=None)
def respond(self: Any, delivery_id: str, run: int) -> str:
    """Start the response to a delivery: find the incident, post the first note, fan out."""
    rt = runtime_of(self.app)
    return respond_flow.respond(task_carrier(self, rt), rt, delivery_id, run)


@shared_task(bind=True, name=GATHER, max_retries=None)
def gather(self: Any, run_id: str) -> str:
    """Run the run's collectors at once, write the bundle, then post the evidence note."""
    rt = runtime_of(self.app)
    try:
        entries = evidence_note.gather_evidence(rt, run_id)
        done = evidence_note.finish_run(rt, run_id, entries, _now(), actions_sender(self.app, rt))
        # "Phone call for critical trading impacts": the evidence says whether trading is hit.
        desk.register_call(rt, load_run(rt, run_id), entries, _now())
        return done
    except PagerDutyUnavailable as exc:
        state = load_run(rt, run_id)

        def give_up(why: str) -> None:
            record_failure(rt, state, "evidence_note", why)
            # Finished, though failed: nothing is to requeue it as stalled.
            rt.deliveries.update(state.delivery_id, pipeline=f"failed: evidence note: {why}")

        retry_or_give_up(
            self,
            rt,
            exc,
            give_up,
            delivery_id=state.delivery_id,
            incident_id=state.incident_id or "",
            step="evidence note",
        )
        return run_id


@shared_task(bind=True, name=NOTE_RESOLVED, max_retries=None)
def note_resolved(self: Any, delivery_id: str) -> str:
    """Note alerts Alertmanager reports resolved; when all of a group are, validate and say so."""
    rt = runtime_of(self.app)
    try:
        noted = resolution.post_resolved_note(rt, delivery_id)
        closing.close_in_outbox(rt, delivery_id, _now())  # PagerDuty's webhook does it there
        return noted
    except IncidentNotFound as exc:
        retry_lookup(self, rt)
        rt.deliveries.update(delivery_id, failures={"resolved_note": str(exc)})
        return "gave up"
    except PagerDutyUnavailable as exc:

        def give_up(why: str) -> None:
            rt.deliveries.update(delivery_id, failures={"resolved_note": why})

        retry_or_give_up(self, rt, exc, give_up, delivery_id=delivery_id, step="resolved note")
        return "gave up"


@shared_task(bind=True, name="tasks.pipeline.sla_tick")
def sla_tick(self: Any) -> int:
    """Claim the SLA deadlines that are due (each exactly once) and enqueue their actions.

    Claims a dead tick left behind are taken back after the lease and enqueued again.
    """
    rt = runtime_of(self.app)
    now = _now()
    claims = rt.clock.reclaim_stale(now, rt.settings.sla_claim_lease_seconds)
    claims += rt.clock.claim_due(now)
    for claim in claims:
        # P0/P1: the urgent lane; e-mails first: a notify queue, which no urgent worker reads.
        queue = deadline_queue(rt.settings.queue, claim.deadline.kind, claim.deadline.priority)
        self.app.send_task(SLA_ACTION, args=[asdict(claim.deadline)], queue=queue)
        rt.clock.release([claim])  # at once: a failure further on re-sends only the rest
    return len(claims)


@shared_task(bind=True, name="tasks.pipeline.recover")
def recover(self: Any) -> int:
    """Give back what dead workers held; every half minute, queue stalled deliveries again."""
    return requeue.recover(runtime_of(self.app), sender_of(self.app), time.time())


@shared_task(bind=True, name="tasks.pipeline.joined_tick")
def joined_tick(self: Any) -> int:
    """Send the "more alerts" notes that are due, one task per incident's batch."""
    rt = runtime_of(self.app)
    lease = rt.policy.storm.give_up_after.total_seconds() + JOINED_LEASE_MARGIN_SECONDS
    batches = joined_alerts.take_due(rt, time.time(), lease)
    for batch in batches:
        priority = joined_alerts.run_priority(rt, joined_alerts.incident_of(batch))
        queue = queue_for(rt.settings.queue, priority)
        self.app.send_task(JOINED_NOTE, args=[batch], queue=queue)
    return len(batches)


@shared_task(bind=True, name=JOINED_NOTE, max_retries=None)
def joined_note(self: Any, batch: str) -> str:
    """Post one incident's "more alerts" note for the deliveries that joined its run."""
    rt = runtime_of(self.app)
    try:
        return joined_alerts.post_joined_note(rt, batch, _now())
    except IncidentNotFound as exc:
        retry_lookup(self, rt)
        log.error("%s: %s; the joined alerts get no note", batch, exc)
        joined_alerts.done(rt, batch)
        return "gave up"
    except PagerDutyUnavailable as exc:

        def give_up(why: str) -> None:
            log.error("the joined-alerts note of %s failed: %s", batch, why)
            joined_alerts.done(rt, batch)

        retry_or_give_up(self, rt, exc, give_up, step="joined alerts note")
        return "gave up"


@shared_task(bind=True, name=SLA_ACTION, max_retries=None)
def sla_action(self: Any, deadline: dict[str, Any]) -> str:
    """Act on one passed deadline: escalate, remind, call management in, or post an update."""
    rt = runtime_of(self.app)
    due = Deadline.from_dict(deadline)
    owner = self.request.id or "-"
    seconds = int(self.app.conf.task_time_limit) + 60
    rt.clock.acting(due, _now())  # each try: the SLA auditor leaves a running action alone
    with actions.acting_alone(rt, due, owner, seconds) as alone:
        if not alone:  # another copy is acting: look again once it is done
            raise self.retry(countdown=SLA_LOCK_RETRY_SECONDS)
        try:
            done = actions.act(rt, due, _now())
            rt.clock.acted(due)
            return done
        except PagerDutyUnavailable as exc:
            retry_or_give_up(
                self,
                rt,
                exc,
                lambda why: sla_gave_up(rt, due, why),
                incident_id=due.incident_id,
                step=f"SLA {due.kind}",
            )
            return "gave up"
        except EmailUnavailable as exc:
            retry_email_or_give_up(
                self,
                rt,
                exc,
                lambda why: sla_gave_up(rt, due, why, email=True),
                incident_id=due.incident_id,
                step=f"SLA {due.kind} e-mail",
            )
            return "gave up"


def sla_gave_up(rt: Runtime, due: Deadline, why: str, email: bool = False) -> None:
    """Record a deadline's action as failed for good; the auditor does not queue it again."""
    actions.gave_up(rt, due, why, email=email)
    rt.clock.acted(due)


@shared_task(bind=True, name="tasks.pipeline.watchdog_check")
def watchdog_check(self: Any) -> str:
    """Page once when Alertmanager's Watchdog alert stopped arriving (safe to run twice)."""
    rt = runtime_of(self.app)
    try:
        return watchdog.check(rt, _now())
    except PagerDutyUnavailable as exc:  # the next check, seconds away, tries again
        log.error("the monitoring pipeline is silent and the page failed: %s", exc)
        return "page failed"


@shared_task(bind=True, name="tasks.pipeline.sla_audit")
def sla_audit(self: Any) -> int:
    """Queue again the due SLA deadlines whose action never ran (safe to run twice at once)."""
    rt = runtime_of(self.app)

    def send(name: str, args: list[Any], queue: str) -> None:
        self.app.send_task(name, args=args, queue=queue)

    return audit.audit(rt, _now(), send)


ACTION_BUSY_RETRY_SECONDS = 2.0


@shared_task(bind=True, name=ACT, max_retries=None)
def act(self: Any, proposal_id: str) -> str:
    """Run one approved runbook action exactly once, verify it, note what became of it."""
    rt = runtime_of(self.app)
    try:
        return actions_act.run_approved(rt, proposal_id, self.request.id or "-")
    except actions_act.TargetBusy:  # one action per target at a time: wait for the other
        raise self.retry(countdown=ACTION_BUSY_RETRY_SECONDS) from None
    except SoftTimeLimitExceeded:  # acted or not, nobody can tell: say so, never act again
        return actions_act.ran_out_of_time(rt, proposal_id)
    except PagerDutyUnavailable as exc:
        return retry_or_log(self, rt, exc, f"action {proposal_id} note")


@shared_task(bind=True, name=ACTION_REFUSED, max_retries=None)
def action_refused(
    self: Any, proposal_id: str, number: int, approver: str, via: str, why: str
) -> str:
    """Note on the incident that an approval was refused, why, and that nothing ran."""
    rt = runtime_of(self.app)
    try:
        return actions_act.note_refused(rt, proposal_id, number, approver, via, why)
    except PagerDutyUnavailable as exc:
        return retry_or_log(self, rt, exc, f"action {proposal_id} refusal note")


@shared_task(bind=True, name=ACTION_WAITS, max_retries=None)
def action_waits(
    self: Any, proposal_id: str, count: int, required: int, approver: str, via: str
) -> str:
    """Note on the incident that an approval counted and the action waits for another person."""
    rt = runtime_of(self.app)
    try:
        return actions_act.note_waits(rt, proposal_id, count, required, approver, via)
    except PagerDutyUnavailable as exc:
        return retry_or_log(self, rt, exc, f"action {proposal_id} approval note")


@shared_task(bind=True, name=APPROVAL_LINKS, max_retries=None)
def approval_links(self: Any, incident_id: str, proposal_ids: list[str]) -> str:
    """E-mail each named approver of a set of proposals their own approval link, once."""
    rt = runtime_of(self.app)
    try:
        return approval_mail.send_links(rt, incident_id, proposal_ids, _now())
    except EmailUnavailable as exc:

        def give_up(why: str) -> None:
            log.error("approval links for %s not e-mailed: %s", incident_id, why)

        retry_email_or_give_up(
            self, rt, exc, give_up, incident_id=incident_id, step="approval links e-mail"
        )
        return "gave up"


@shared_task(bind=True, name=SLACK_MESSAGE, max_retries=None)
def slack_message(self: Any, request: dict[str, Any]) -> str:
    """Send one Slack request about an incident (its thread, a reply, a post, an update)."""
    rt = runtime_of(self.app)
    try:
        return slack_send.send(rt, rt.slack, request, _now())
    except SlackUnavailable as exc:
        what = f"Slack {request.get('what')} message"
        return retry_or_log(self, rt, exc, what, incident_id=str(request.get("incident_id", "")))


@shared_task(bind=True, name=ACTION_ALREADY, max_retries=None)
def action_already(self: Any, record_id: str, asker: str, via: str, message: str) -> str:
    """Note on the incident that a repeated run of an action runs nothing, and who ran it."""
    rt = runtime_of(self.app)
    try:
        return actions_act.note_already(rt, record_id, asker, via, message)
    except PagerDutyUnavailable as exc:
        return retry_or_log(self, rt, exc, f"action {record_id} already-done note")


@shared_task(bind=True, name=APPROVE_IF_ASSIGNED, max_retries=None)
def approve_if_assigned(self: Any, proposal_id: str, approver: str, via: str) -> str:
    """Approve a proposal for an approver the action allows if assigned: ask PagerDuty first."""
    rt = runtime_of(self.app)
    try:
        return actions_act.approve_if_assigned(
            rt, proposal_id, approver, via, actions_sender(self.app, rt)
        )
    except PagerDutyUnavailable as exc:
        return retry_or_log(self, rt, exc, f"action {proposal_id} assignment check")


def actions_sender(app: Celery, rt: Runtime) -> Callable[[str, list[Any]], None]:
    """Return a sender of tasks by name onto the actions queue (as the approval paths send)."""
    queue = actions_queue(rt.settings.queue)

    def send(name: str, args: list[Any]) -> None:
        app.send_task(name, args=args, queue=queue)

    return send


@shared_task(bind=True, name=CLOSE_INCIDENT, max_retries=None)
def close_incident(self: Any, delivery_id: str) -> str:
    """On resolve: apply the resolved event, the timeline into the bundle, the closing note."""
    rt = runtime_of(self.app)
    try:
        return closing.close_resolved(rt, delivery_id, _now())
    except PagerDutyUnavailable as exc:
        return retry_or_log(self, rt, exc, "closing note", delivery_id=delivery_id)


@shared_task(bind=True, name=ANSWER_NOTE, max_retries=None)
def answer_note(self: Any, delivery_id: str) -> str:
    """Answer a person's malformed note command with a note saying what was expected."""
    rt = runtime_of(self.app)
    try:
        return note_answers.answer_malformed(rt, delivery_id)
    except PagerDutyUnavailable as exc:

        def give_up(why: str) -> None:
            log.error("the answer to the note of delivery %s failed: %s", delivery_id, why)

        retry_or_give_up(self, rt, exc, give_up, delivery_id=delivery_id, step="command answer")
        return "gave up"


@shared_task(bind=True, name="tasks.pipeline.prune_bundles")
def prune_bundles(self: Any) -> int:
    """Delete bundles older than the retention; return how many went."""
    rt = runtime_of(self.app)
    cutoff = _now().timestamp() - rt.settings.bundle_retention_days * 86400
    # With a shared store the local folder is this host's working copy: both are pruned.
    removed = bundle.prune(rt.settings.bundle_dir, cutoff)
    return rt.bundles.prune(cutoff) if rt.bundles.shared else removed


@shared_task(bind=True, name="tasks.pipeline.heartbeat")
def heartbeat(self: Any) -> str:
    """Record that beat and a worker are alive, for /readyz and operators."""
    rt = runtime_of(self.app)
    stamp = _now().isoformat()
    worker_marks.record_heartbeat(rt.redis, stamp)
    return stamp
