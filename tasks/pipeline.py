"""The response pipeline as Celery tasks: first note, collectors in parallel, bundle, evidence note.

Each task takes ids, declares its retries and calls plain functions in `tasks.run` (`prepare`,
`first_response`, `evidence_note`, ...).
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from celery import Celery, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_prerun, task_received, worker_init, worker_ready

from collectors import plots
from tasks import recovery
from tasks.actions import act as actions_act
from tasks.evidence import bundle
from tasks.lanes import (
    Lane,
    actions_queue,
    current_lane,
    deadline_queue,
    lane_of_queue,
    queue_for,
    urgent_queue,
    writing_first_response,
)
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
from tasks.notes.voice import TemplateProblem
from tasks.notify import approval_links as approval_mail
from tasks.notify import desk, slack_send
from tasks.notify.email import EmailUnavailable
from tasks.notify.email_compose import decide_smtp
from tasks.notify.slack import SlackUnavailable
from tasks.pagerduty.client import IncidentRef, PagerDutyUnavailable
from tasks.pagerduty.incidents import IncidentNotFound
from tasks.retries import MAX_DELAY_SECONDS, Verdict, decide
from tasks.run import (
    correlating,
    evidence_note,
    first_response,
    joined_alerts,
    prepare,
    resolution,
    watching,
)
from tasks.run.state import RunState, load_run, record_failure
from tasks.runtime import Runtime, open_redis
from tasks.sla import actions, audit, closing, note_answers, watchdog
from tasks.store import worker_marks
from tasks.store.dead_letters import DeadLetter
from tasks.store.deliveries import current_attempt
from tasks.store.sla_clock import Deadline

log = logging.getLogger(__name__)

# A batch sent and not done is sent again after the policy's give-up time and this much more.
# Only a tick that died between taking and sending leaves one behind (a dead worker's task
# comes back by itself), while a live task may wait for budget or retry that long.
JOINED_LEASE_MARGIN_SECONDS = 3600.0
RECONCILE_EVERY_SECONDS = 30
MAX_REQUEUES = 3  # a delivery requeued this often and still stalled is failed for good
RECONCILE_HORIZON_SECONDS = 6 * 3600  # deliveries older than this are not looked at again
SLA_LOCK_RETRY_SECONDS = 5.0


def runtime_of(app: Celery) -> Runtime:
    """Return the process's Runtime for `app`, building it on first use."""
    runtime = getattr(app, "_responder_runtime", None)
    if runtime is None:
        runtime = Runtime(app.conf.responder_settings)

        def send(name: str, args: list[Any], queue: str) -> None:
            app.send_task(name, args=args, queue=queue)

        runtime.send_task = send
        app._responder_runtime = runtime  # type: ignore[attr-defined]
    return runtime


def _now() -> datetime:
    return datetime.now(UTC)


BOTTLENECK_SECONDS = 5.0  # a write waiting longer than this for budget is worth a log line


_held: recovery.HeldMessages | None = None  # this worker process's heartbeat


@worker_init.connect
def _check_note_templates(sender: Any = None, **_: Any) -> None:
    """Refuse to start with a note template that cannot render: fail now, not at 3 a.m."""
    app = getattr(sender, "app", None)
    if getattr(getattr(app, "conf", None), "responder_settings", None) is None:
        return
    try:
        runtime_of(app).voice  # noqa: B018 - checks every template as it loads them
    except TemplateProblem as exc:
        log.critical("the worker cannot start: note templates: %s", exc)
        raise SystemExit(2) from None  # an Exception would be logged by Celery, and ignored


@worker_init.connect
def _warm_plots(sender: Any = None, **_: Any) -> None:
    """Load the plotting library before the pool forks: no first alert waits for it."""
    try:
        plots.warm()
    except Exception:  # a plot that cannot be drawn is the collector's to report, not a start
        log.exception("plots could not be warmed up; the first plot will load matplotlib")


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Publish which messages this worker holds, every few seconds, while it lives."""
    global _held
    app = getattr(sender, "app", None)
    settings = getattr(getattr(app, "conf", None), "responder_settings", None)
    if settings is None:
        return
    client = open_redis(settings, socket_timeout=2, socket_connect_timeout=2)
    _held = recovery.HeldMessages(client, getattr(sender, "hostname", None) or socket.gethostname())
    recovery.hold(_held)
    _held.start()


@task_received.connect
def _note_received(request: Any = None, **_: Any) -> None:
    """Count a message this worker took as held until its task is acknowledged."""
    message = getattr(request, "message", None)
    if _held is not None and message is not None and message.delivery_tag:
        _held.received(str(message.delivery_tag))


# No stop on `worker_shutting_down`: a warm shutdown still runs its tasks to the end, and a
# silent heartbeat would have `recover` hand them to another worker meanwhile. The daemon
# thread ends with the process; kombu gives back what is left at shutdown.


@task_prerun.connect
def _enter_lane(task: Any = None, **_: Any) -> None:
    """Draw on the budget of the lane the task came from (its queue)."""
    settings = getattr(task.app.conf, "responder_settings", None) if task else None
    if task is not None:
        current_attempt.set(task.request.id or "-")  # whose attempt a pending effect is
    if settings is not None:
        routing_key = (task.request.delivery_info or {}).get("routing_key")
        current_lane.set(lane_of_queue(settings.queue, routing_key))


def count_attempt(rt: Runtime, task_id: str | None, what: str) -> tuple[int, float]:
    """Count one attempt at `what` by a task (retries keep its id); return (count, first at).

    Kept in Redis, not in the task's retry count: a retry that only waited for PagerDuty's
    budget is not an attempt.
    """
    return worker_marks.count_attempt(rt.redis, task_id, what)


def retry_lookup(task: Any, rt: Runtime) -> None:
    """Retry `task` after the lookup delay while lookups of its incident remain; else return."""
    if count_attempt(rt, task.request.id, "lookup")[0] < rt.settings.incident_lookup_attempts:
        raise task.retry(countdown=rt.settings.incident_lookup_delay_seconds)


def retry_or_give_up(
    task: Any,
    rt: Runtime,
    exc: PagerDutyUnavailable,
    give_up: Callable[[str], None],
    **about: str,
) -> None:
    """Retry a failed PagerDuty write, wait for budget, or give up: record why, dead-letter it.

    A write our own budget held back waits for it (a countdown of the budget's wait), as long
    as it takes: that is not a failure. 429 waits PagerDuty's `ratelimit-reset`; 5xx and
    network failures back off until the policy's `storm.give_up_after` has passed since the
    first failure (or `RESPONDER_PAGERDUTY_ATTEMPTS`, when set, is spent); other 4xx are final.
    Each wait is a Celery countdown, far below the visibility timeout. `about` names the
    delivery, incident and step for the dead-letter entry.
    """
    if exc.held_back:
        wait = min(exc.wait_seconds, MAX_DELAY_SECONDS) + random.uniform(0, 0.5)  # spread out
        if wait > BOTTLENECK_SECONDS:
            log.warning(
                "the responder is the bottleneck (%s lane): %s; %s waits %.1f s",
                current_lane.get(),
                exc,
                task.name,
                wait,
            )
        raise task.retry(countdown=wait)
    attempt, first_failed = count_attempt(rt, task.request.id, "failure")
    verdict = decide(exc.status, exc.headers, attempt, rt.settings.pagerduty_retry_base_seconds)
    cap = rt.settings.pagerduty_attempts
    retry_or_dead_letter(task, rt, exc, verdict, attempt, first_failed, give_up, cap, **about)


def retry_or_dead_letter(
    task: Any,
    rt: Runtime,
    exc: Exception,
    verdict: Verdict,
    attempt: int,
    first_failed: float,
    give_up: Callable[[str], None],
    cap: int = 0,
    **about: str,
) -> None:
    """Retry as `verdict` says while the policy's `storm.give_up_after` (and `cap` attempts,
    0: no cap) allow; else give up and dead-letter the task, saying why."""
    failing_for = time.time() - first_failed
    in_time = failing_for + verdict.delay < rt.policy.storm.give_up_after.total_seconds()
    if verdict.retry and in_time and (cap <= 0 or attempt < cap):
        log.warning("%s; retrying in %.1f s (attempt %d)", exc, verdict.delay, attempt)
        raise task.retry(countdown=verdict.delay)
    suffix = f"; gave up after {attempt} attempts in {failing_for:.0f} s" if verdict.retry else ""
    why = f"{exc} ({verdict.reason}{suffix})"
    give_up(why)
    dead_letter(task, rt, why, **about)


def dead_letter(task: Any, rt: Runtime, why: str, **about: str) -> None:
    """Record the failing task in the dead-letter set, with why, for an operator to replay."""
    rt.dead_letters.add(
        DeadLetter(
            id=task.request.id or f"{task.name}:{time.time()}",
            task=task.name,
            args=list(task.request.args or []),
            queue=(task.request.delivery_info or {}).get("routing_key") or rt.settings.queue,
            reason=why,
            failed_at=time.time(),
            **about,
        )
    )


def retry_email_or_give_up(
    task: Any,
    rt: Runtime,
    exc: EmailUnavailable,
    give_up: Callable[[str], None],
    **about: str,
) -> None:
    """Retry a failed e-mail, wait for another attempt in flight, or give up and dead-letter it.

    `decide_smtp`: a 4xx reply or a network failure (refused, reset, timed out) backs off and
    tries again until the policy's `storm.give_up_after` has passed since the first failure;
    a 5xx reply is final. `about` names the incident and step for the dead-letter entry.
    """
    if exc.held_back:
        raise task.retry(
            countdown=min(exc.wait_seconds, MAX_DELAY_SECONDS) + random.uniform(0, 0.5)
        )
    attempt, first_failed = count_attempt(rt, task.request.id, "email-failure")
    verdict = decide_smtp(exc.code, attempt, rt.settings.smtp_retry_base_seconds)
    retry_or_dead_letter(task, rt, exc, verdict, attempt, first_failed, give_up, **about)


def retry_or_log(task: Any, rt: Runtime, exc: PagerDutyUnavailable, what: str, **about: str) -> str:
    """Retry a failed PagerDuty write, or give up saying in the log that `what` failed."""

    def give_up(why: str) -> None:
        log.error("%s failed: %s", what, why)

    retry_or_give_up(task, rt, exc, give_up, step=what, **about)
    return "gave up"


@shared_task(bind=True, name=RESPOND, max_retries=None)
def respond(self: Any, delivery_id: str, run: int) -> str:
    """Start the response to a delivery: find the incident, post the first note, fan out."""
    rt = runtime_of(self.app)
    state = prepare.prepare_run(rt, delivery_id, run, _now())
    if state is None:
        return "nothing to respond to"
    if correlating.place(rt, state, _now()).get("acts"):
        joined = respond_joined(self, rt, state)
        if joined is not None:
            return joined
    watching.judge(rt, state, _now())  # a new incident: the same group back soon is raised
    incident = None
    routine = current_lane.get() is Lane.ROUTINE
    if routine:  # until its first note is out, other incidents' follow-ups wait for it
        rt.budget.first_response_begins(state.run_id)
    try:
        with writing_first_response():
            incident = first_response.resolve_incident(rt, state)
        if incident is None and first_response.trigger_incident(rt, state, _now()):
            raise self.retry(countdown=min(rt.settings.incident_lookup_delay_seconds, 1.0))
        if incident is None:
            retry_lookup(self, rt)
        with writing_first_response():
            first_response.post_first_note(rt, state, incident, _now())
            first_response.call_in_security(rt, state, incident)  # once per incident
    except PagerDutyUnavailable as exc:
        # The first note is posted before the security team is called in: name what failed.
        noted = rt.deliveries.effect_done(state.run_id, "first_note")
        step = "security_request" if noted else "first_note"
        retry_or_give_up(
            self,
            rt,
            exc,
            lambda why: record_failure(rt, state, step, why),
            delivery_id=state.delivery_id,
            incident_id=state.incident_id or "",
            step=step.replace("_", " "),
        )
    if routine:  # posted or given up for good (a retry that waits raised before this)
        rt.budget.first_response_ends(state.run_id)
    # The evidence starts before the clock's follow-ups: they must not delay it.
    if not rt.deliveries.effect_done(state.run_id, "fanout"):
        queue = queue_for(rt.settings.queue, state.classification.priority)  # the run's lane
        self.app.send_task(GATHER, args=[state.run_id], queue=queue)
        rt.deliveries.mark_effect(state.run_id, "fanout")
    first_response.start_clock(rt, state)
    if incident is not None:
        seconds = int(self.app.conf.task_time_limit) + 60  # the SLA actions' lock
        follow_first_note(rt, state, incident, self.request.id or "-", seconds, _now())
    return state.run_id


def respond_joined(task: Any, rt: Runtime, state: RunState) -> str | None:
    """Answer a run whose group joined an open incident: no first note, no clock of its own.

    Return None when it must be answered on its own after all (the incident it joins is
    resolved, or has no PagerDuty incident after every lookup); the caller then does.
    """
    lead = correlating.lead_run(rt, state.correlation)
    why_alone = correlating.why_alone(rt, lead)
    if why_alone == correlating.NOT_YET:
        retry_lookup(task, rt)  # retries while lookups remain
        why_alone = "the incident it joins had no PagerDuty incident after every lookup"
    if (
        not why_alone
        and rt.policy.pagerduty.incident != "trigger"
        and first_response.resolve_incident(rt, state) is None
    ):
        retry_lookup(task, rt)  # Alertmanager's incident for the group: to merge it (or not)
    if why_alone or lead is None:
        correlating.answer_alone(rt, state, why_alone)
        return None
    try:
        needs_evidence = correlating.join(rt, state, lead, _now())
    except PagerDutyUnavailable as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            # PagerDuty refused the merge for good (the target resolved meanwhile): answer
            # the group on its own rather than leave it without a response.
            correlating.answer_alone(rt, state, f"PagerDuty refused to merge: {exc}")
            return None
        retry_or_give_up(
            task,
            rt,
            exc,
            lambda why: record_failure(rt, state, "join", why),
            delivery_id=state.delivery_id,
            incident_id=state.incident_id or "",
            step="join",
        )
        return "gave up"
    if needs_evidence and not rt.deliveries.effect_done(state.run_id, "fanout"):
        queue = queue_for(rt.settings.queue, state.classification.priority)
        task.app.send_task(GATHER, args=[state.run_id], queue=queue)
        rt.deliveries.mark_effect(state.run_id, "fanout")
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
    rt = runtime_of(self.app)
    now = time.time()
    count = len(recovery.reclaim_orphans(rt.redis, now))
    if worker_marks.take_reconcile_turn(rt.redis, RECONCILE_EVERY_SECONDS):
        count += requeue_stalled(self.app, rt, now)
    return count


def requeue_stalled(app: Celery, rt: Runtime, now: float) -> int:
    """Queue again each delivery stuck queued or running with no task message behind it.

    The queues and the unacked set cannot be read in one step, so a message moving between
    them can be missed once: a delivery is requeued only when two passes in a row found it
    stalled with nothing behind it. One requeued MAX_REQUEUES times is failed for good.
    """
    lease = rt.settings.pipeline_lease_seconds
    stalled = recovery.stalled_deliveries(rt.redis, now, lease, RECONCILE_HORIZON_SECONDS)
    suspects_before = worker_marks.take_suspects(rt.redis)
    if not stalled:
        return 0
    queues = [rt.settings.queue, urgent_queue(rt.settings.queue)]
    referenced = recovery.referenced_deliveries(rt.redis, queues)
    unreferenced = [(d, p) for d, p in stalled if d.encode() not in referenced]
    fresh = [d for d, _ in unreferenced if d not in suspects_before]
    worker_marks.keep_suspects(rt.redis, fresh, 3 * RECONCILE_EVERY_SECONDS)
    requeued = 0
    for delivery_id, pipeline in unreferenced:
        if delivery_id in suspects_before:
            requeue(app, rt, delivery_id, pipeline)
            requeued += 1
    return requeued


def requeue(app: Celery, rt: Runtime, delivery_id: str, pipeline: str) -> None:
    """Send a stalled delivery's next task again, or fail it after MAX_REQUEUES tries."""
    delivery = rt.deliveries.load(delivery_id)
    classification = delivery.classification if delivery else None
    queue = queue_for(rt.settings.queue, classification.priority if classification else None)
    runs = delivery.runs if delivery else 1
    tries = rt.deliveries.count_requeue(delivery_id)
    if tries > MAX_REQUEUES:
        why = f"stalled {pipeline} {MAX_REQUEUES} times with no task behind it"
        rt.deliveries.update(delivery_id, pipeline=f"failed: {why}")
        args = [delivery_id, runs]
        letter = DeadLetter(f"stalled:{delivery_id}", RESPOND, args, queue, why, time.time())
        rt.dead_letters.add(replace(letter, delivery_id=delivery_id, step="pipeline"))
        log.error("delivery %s %s: dead-lettered", delivery_id, why)
        return
    run_id = delivery.run_id if delivery else ""
    if pipeline == "running" and run_id and rt.deliveries.effect_done(run_id, "fanout"):
        app.send_task(GATHER, args=[run_id], queue=queue)
    else:
        app.send_task(RESPOND, args=[delivery_id, runs], queue=queue)
    rt.deliveries.update(delivery_id, requeued_at=datetime.now(UTC).isoformat())
    log.warning("delivery %s was %s with no task behind it: queued again", delivery_id, pipeline)


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
