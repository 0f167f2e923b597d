"""The retry and dead-letter engine of the tasks: retry a failed write, wait, or give up for good.

Every task that writes to PagerDuty, Slack or e-mail goes through here when a write fails. The
decision itself is pure (`tasks.retries.decide`, `decide_smtp`); here are its I/O: counting
attempts in Redis, raising Celery's retry, and recording what failed for good in the
dead-letter set, with why, for an operator to replay.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from tasks.gateways.email import EmailUnavailable
from tasks.gateways.email_compose import decide_smtp
from tasks.gateways.pagerduty import PagerDutyUnavailable
from tasks.lanes import current_lane
from tasks.retries import MAX_DELAY_SECONDS, Verdict, decide
from tasks.runtime import Runtime
from tasks.store import worker_marks
from tasks.store.dead_letters import DeadLetter

log = logging.getLogger(__name__)

BOTTLENECK_SECONDS = 5.0  # a write waiting longer than this for budget is worth a log line


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
